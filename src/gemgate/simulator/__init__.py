"""A wire-faithful stand-in for Google's Gemini API, for tests, demos and offline CI.

Use it as a server (`gemgate simulate`), in-process (`run_simulator()`), or as the pytest fixture
`gemini_simulator`.
"""

from gemgate.simulator.app import build_app
from gemgate.simulator.config import FaultRule, QuotaLimits, SimConfig, SimModel, SimProject
from gemgate.simulator.core import Simulator
from gemgate.simulator.runner import RunningSimulator, run_simulator

__all__ = [
    "FaultRule",
    "QuotaLimits",
    "RunningSimulator",
    "SimConfig",
    "SimModel",
    "SimProject",
    "Simulator",
    "build_app",
    "run_simulator",
]
