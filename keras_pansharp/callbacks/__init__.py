"""keras_pansharp.callbacks: toolbox-exact evaluation during `fit()`.

`RREvaluation` and `FREvaluation` write `val_*` / `fr_*` keys into the epoch
logs; list them before `ModelCheckpoint`, `EarlyStopping`, `CSVLogger`.
"""

from keras_pansharp.callbacks.evaluation import FREvaluation, RREvaluation
