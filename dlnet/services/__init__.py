"""The participants' web services (paper Sec. 6.1): federation, compliance and bridge.

Each is a FastAPI app built by `create_app(settings)` in its own module; `dlnet serve <service>` runs
one under uvicorn. Shared pieces: `settings` (typed config), `db` (pool + migrations), `web` (errors,
limits, metrics, logs), `auth` (admin tokens, SEP-10), `chain` (Horizon transactions).
Nothing happens at import time.
"""
