"""The panel's state: observable QObjects with no widget in them, testable without a screen.

Widgets bind to these (read properties, connect to `changed` signals, call methods);
they hold no state of their own beyond what is on screen.
"""
