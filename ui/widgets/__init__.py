"""Widgets: they draw the state in ui.model and call its methods; they keep no state of their own."""
