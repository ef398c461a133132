"""Seeing what the pipeline does: overlays drawn into images, a live window, an MP4 with a contact sheet, and
Rerun recordings.

    from xrseg.sinks.viz.overlay import OverlayLayers, render_overlay    # pure drawing into HxWx3 uint8 RGB copies
    from xrseg.sinks.viz.tracker import OverlayTracker                    # a Sink that builds the layers per frame
    from xrseg.sinks.viz.window import ViewerSink                         # --view: an OpenCV window with keys
    from xrseg.sinks.viz.video import OverlayVideoSink                    # overlay.mp4 + contact_sheet.png
    from xrseg.sinks.viz.rerun_log import RerunSink                       # --rerun FILE.rrd (the `rerun` extra)

The modules are imported one by one (nothing here imports them), so drawing never pulls in Rerun.
See docs/viewing.md.
"""
