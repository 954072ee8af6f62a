"""The annotators' and admins' web UI (Gradio): a login panel, then Tamper, Compare and Admin tabs."""

from critic.annotation_app.ui.app import AnnotationUI, build_ui
from critic.annotation_app.ui.render import parse_line_numbers, render_check, render_critique

__all__ = ["AnnotationUI", "build_ui", "parse_line_numbers", "render_check", "render_critique"]
