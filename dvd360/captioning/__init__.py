"""360 Text Fusion (the paper's Sec. 3.2): caption four perspective views of a clip's first
frame and fuse them into one panorama caption; also the direct whole-ERP caption."""

from dvd360.captioning.captioners import BlipCaptioner, Captioner, LandmarkCaptioner
from dvd360.captioning.fusion import ChatFuser, make_fuser, template_fuse
from dvd360.captioning.stage import caption_clip, caption_clips, caption_settings, write_caption_csvs
from dvd360.captioning.views import VIEW_LONGITUDES, first_frame_views

__all__ = ["BlipCaptioner", "Captioner", "LandmarkCaptioner", "ChatFuser", "make_fuser", "template_fuse",
           "caption_clip", "caption_clips", "caption_settings", "write_caption_csvs", "VIEW_LONGITUDES", "first_frame_views"]
