"""The selection core: gaze samples -> fixations and triggers -> prompts on a keyframe -> the chosen mask."""
