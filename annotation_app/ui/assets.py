"""The UI's own stylesheet and scripts (ui/static/), handed to Gradio when the UI is mounted."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")


def assets() -> dict[str, str]:
    """`css` and `head` keyword arguments for `gr.mount_gradio_app`: every static/*.css, and every
    static/*.js as a script in the page's head (keyboard shortcuts must be there before any event)."""
    css = "\n".join(path.read_text() for path in sorted(STATIC.glob("*.css")))
    scripts = "\n".join(f"<script>\n{path.read_text()}\n</script>" for path in sorted(STATIC.glob("*.js")))
    return {"css": css, "head": scripts}
