"""Annotations for dataset work: a run's selections (and, with ``--track``, its per-frame object masks) as
COCO instance segmentation and MOT-style box tracks (:mod:`xrseg.annotations.coco`)."""
