"""inas: device-aware one-shot neural architecture search for dense prediction, scaled out on Ray."""

__version__ = "0.1.0"
