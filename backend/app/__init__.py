"""ModelTrain backend package."""

__version__ = "0.1.0"
