"""Host tool: convert a model to .rknn with rknn-toolkit2 (in its own venv) and verify it against LiteRT."""

TARGETS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562")  # target_platform values of rknn-toolkit2
DEFAULT_SAMPLES = 16  # inputs compared in the verification report
