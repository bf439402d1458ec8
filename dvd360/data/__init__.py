"""Data: video I/O, the WEB360 layout, flow encoding, synthetic panorama videos, clip sampling."""
