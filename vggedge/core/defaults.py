"""Every default a command offers, in one place: the CLI options, the pipeline and the device bench use these.

No imports: the device side reads this module too.
"""

EVAL_SAMPLES = 500  # evaluation images taken from --data (at most half of a folder without a validation set)
CALIBRATION_SAMPLES = 100  # int8 calibration images taken from the training images
RUNS = 30  # timed batch-1 invocations for latency (after warm-up)
WARMUP = 3  # untimed invocations before timing
MIN_AGREEMENT = 0.97  # top-1 agreement of a TFLite model with its Keras source below which it fails verification
# Accuracy budget: a result whose top-1 falls more than this many points below the baseline is
# `over_budget`. 1.0 point is what every shipped recipe but two keeps on the sample; `edge` and `fast`
# (conv filters zeroed or removed) carry their own 1.5 (measured: -1.39 and -1.11 points).
MAX_DROP_PTS = 1.0
# Time cap for the remedies of one recipe together (vggedge.run.remedies), minutes
REMEDY_MINUTES = 30.0
SEED = 0  # fine-tuning seed; step i of a recipe uses SEED + i
# `bench` on a device: a cool-down before each model (ncnn's benchncnn waits 10 s too), then BURST_RUNS timed
# runs (the burst p50: a cool board), then SUSTAIN_S of interleaved load before the timed RUNS (the sustained
# p50: what a camera loop meets once the board is warm).
COOLDOWN_S = 10.0
BURST_RUNS = 10
SUSTAIN_S = 30.0
# `bench` and `predict`: one interpreter call longer than this is stopped with one line (a model that loops for
# ever); the full-size VGG16 in float32 takes about a second a call on a Raspberry Pi 4, 0.1 s on a workstation.
MAX_CALL_S = 120.0
