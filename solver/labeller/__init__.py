"""The hand-labelling page: a local web page to label a site's collected captchas quickly."""

from solver.labeller.app import LabelSession, build_label_app, suggest_missing

__all__ = ["LabelSession", "build_label_app", "suggest_missing"]
