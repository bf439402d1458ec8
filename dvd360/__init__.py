"""dvd360: evaluation and benchmark harness for 360-degree panorama video generation."""

__version__ = "0.1.0"
