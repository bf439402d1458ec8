"""Models: the 360-Adapter, UNet feature injection, circular padding, model materialisation."""
