"""The boards: the catalog (`catalog`, data/boards.yaml, plus the user's --boards files), what the
framework and TFLite-Micro take themselves (`runtime`), whether a model fits (`fit`, for one
board or every board) and how long it will take (`latency`, calibrated on published figures)."""
