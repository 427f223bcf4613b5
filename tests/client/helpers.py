"""What the client tests submit: LONG leaves time to act while the task runs (the tiny model does
~10-100 it/s on 64 px); ENDLESS runs until it is cancelled (a 1024 px step takes a quarter of a
second or more, 100 of them), for a test whose subject needs the task still running when it acts;
the quick one is tests.support.SMALL."""

LONG = {"width": 64, "height": 64, "num_inference_steps": 60}
ENDLESS = {"width": 1024, "height": 1024, "num_inference_steps": 100}
