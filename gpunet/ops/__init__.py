"""Stateless operations, each with a forward and a backward, in array-API code."""
