"""What the client tests submit: LONG leaves time to act while the task runs (the tiny model does
~10-100 it/s); the quick one is tests.support.SMALL."""

LONG = {"width": 64, "height": 64, "num_inference_steps": 60}
