"""One-step-ahead forecasting of the yearly sunspot numbers with an LSTM.

The data (Wolf's yearly sunspot numbers, 1700-2008) ship inside statsmodels
(``statsmodels.api.datasets.sunspots``), so the example runs offline:
``pip install statsmodels`` (in gpunet's ``examples`` extra). The LSTM reads the last
``WINDOW`` years and predicts the next one; it is trained on the years up to 1929 and
tested, one step ahead, on the years after. The yardstick is the naive forecast "next
year = this year", which is hard to beat on a series this persistent.

With 210 training windows the LSTM overfits when trained for long (its test error grows
again after about a hundred epochs), so the run is short and repeated: five seeds of 100
epochs (three of 60 with ``--quick``), and the test RMSE reported is their mean.

    python examples/sequence_forecast.py [--quick] [--out out] [--seed 0] [--epochs N]

Prints ``naive test rmse: X`` and ``lstm test rmse: Y`` (mean over the seeds) and writes
``OUT/sequence_forecast.png``: the first seed's forecast against the truth on the test
years.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from common import command_line, figure, mean, parse, report, save, seeds

import gpunet
from gpunet.data import batches
from gpunet.losses import MSE
from gpunet.nn import LSTM, Dense, Sequential
from gpunet.optim import Adam, clip_grad_norm

WINDOW = 20
LAST_TRAIN_YEAR = 1929


def sunspots() -> tuple[np.ndarray, np.ndarray]:
    """(years, yearly sunspot numbers) from statsmodels' bundled copy."""
    try:
        import statsmodels.api as sm
    except ImportError:
        raise SystemExit(
            "sequence_forecast needs statsmodels for its data: pip install statsmodels"
        ) from None
    frame = sm.datasets.sunspots.load_pandas().data
    return frame["YEAR"].to_numpy(dtype=int), frame["SUNACTIVITY"].to_numpy(dtype=np.float64)


def windows(series: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, width, 1) of consecutive values and the value after each (n, 1)."""
    n = len(series) - width
    x = np.stack([series[i : i + width] for i in range(n)])[..., None]
    return x.astype(np.float32), series[width:, None].astype(np.float32)


def rmse(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - truth) ** 2)))


def train_forecaster(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> Sequential:
    """An LSTM(1, 32) -> Dense(32, 1) fitted by Adam on mini-batches of 32 windows."""
    gpunet.seed(seed)
    model = Sequential(LSTM(1, 32), Dense(32, 1))
    loss_fn, optimizer = MSE(), Adam(model.parameters(), lr=5e-3)
    for _ in range(epochs):
        for xb, yb in batches(x, y, batch_size=32, shuffle=True):
            loss_fn(model(xb), yb)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            clip_grad_norm(model.parameters(), 1.0)
            optimizer.step()
    return model


def plot(years, truth, naive, forecast, out: Path) -> Path:
    """Observed values and both forecasts over the test years, each forecast's RMSE in its label."""
    fig = figure(8, 3.8)
    ax = fig.subplots()
    ax.plot(years, truth, color="black", linewidth=1.5, label="observed")
    ax.plot(
        years,
        naive,
        color="gray",
        linestyle="--",
        label=f"naive: last year (RMSE {rmse(naive, truth):.1f})",
    )
    ax.plot(
        years,
        forecast,
        color="tab:red",
        label=f"LSTM, first seed (RMSE {rmse(forecast, truth):.1f})",
    )
    ax.set_xlabel("year")
    ax.set_ylabel("sunspot number")
    ax.set_ylim(bottom=min(0.0, float(np.min(forecast))) - 5, top=1.3 * float(np.max(truth)))
    ax.set_title("Yearly sunspots: one-step-ahead forecasts on the test years")
    ax.legend(loc="upper left", ncols=3, frameon=False)
    return save(fig, out, "sequence_forecast.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = command_line(__doc__, "3 seeds of 60 epochs instead of 5 of 100")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs")
    args = parse(parser, argv)
    epochs = args.epochs or (60 if args.quick else 100)
    runs = seeds(args.seed, 3 if args.quick else 5)

    years, values = sunspots()
    split = int(np.searchsorted(years, LAST_TRAIN_YEAR, side="right"))
    scale = float(values[:split].max())  # from the training years only
    x, y = windows(values / scale, WINDOW)
    target_years = years[WINDOW:]
    train = target_years <= LAST_TRAIN_YEAR
    test = ~train
    print(f"backend: {gpunet.backend.name()}")
    print(
        f"sunspots {years[0]}-{years[-1]}: {train.sum()} training targets (to "
        f"{LAST_TRAIN_YEAR}), {test.sum()} test targets; window {WINDOW} years"
    )

    truth = y[test, 0] * scale
    naive = x[test, -1, 0] * scale
    forecasts = []
    for seed in runs:
        start = time.perf_counter()
        model = train_forecaster(x[train], y[train], epochs, seed=seed)
        forecasts.append(gpunet.to_numpy(model(gpunet.asarray(x[test])))[:, 0] * scale)
        print(
            f"seed {seed}: {epochs} epochs in {time.perf_counter() - start:.1f} s, "
            f"test rmse {rmse(forecasts[-1], truth):.2f}"
        )
    naive_rmse = rmse(naive, truth)
    lstm_rmse = mean([rmse(forecast, truth) for forecast in forecasts])
    print(f"naive test rmse: {naive_rmse:.2f}")
    print(f"lstm test rmse: {lstm_rmse:.2f} (mean of {len(runs)} seeds)")
    plot(target_years[test], truth, naive, forecasts[0], args.out)
    report(
        epochs=epochs,
        naive_rmse=naive_rmse,
        lstm_rmse=lstm_rmse,
        lstm_rmse_per_seed=[rmse(forecast, truth) for forecast in forecasts],
    )


if __name__ == "__main__":
    main()
