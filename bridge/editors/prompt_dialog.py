"""The small prompt dialog an editor's launcher asks for (handoff mode "ask").

Shown by the project's environment, not inside the editor, with tkinter from the
standard library: a prompt, an optional seed, and Edit / Open panel... / Cancel.
"+ Another look" adds one more prompt field: every prompt given is edited in the same job
(several looks of each clip, compared side by side in the editor).
"""

from __future__ import annotations

from bridge.wire.edit_params import MAX_VARIANTS

MAX_PROMPTS = 1 + MAX_VARIANTS  # the server's bound on a job's prompts


class DialogUnavailable(RuntimeError):
    """No tkinter in this Python, or no display to show it on."""


Answer = tuple  # (mode, prompts, seed): ("submit", [str, ...], int | None) or ("panel", None, None)


def ask(names: list[str]) -> Answer | None:
    """Ask for the prompts (one or more) for these clips; None when the user cancels. Raises DialogUnavailable."""
    try:
        import tkinter as tk

        root = tk.Tk()
    except Exception as exc:  # ImportError, or TclError without a display
        raise DialogUnavailable(str(exc)) from None
    answer: list = [None]
    root.title("TokenFlow")
    root.attributes("-topmost", True)  # above the editor that asked
    count = len(names)
    what = repr(names[0]) if count == 1 else f"{count} clips"
    tk.Label(root, text=f"Edit {what} with the prompt:").grid(row=0, column=0, columnspan=3, sticky="w", padx=8,
                                                              pady=(8, 2))
    fields = tk.Frame(root)
    fields.grid(row=1, column=0, columnspan=3, padx=8, sticky="we")
    prompts = [tk.Entry(fields, width=56)]
    prompts[0].pack(fill="x")
    seed_row = tk.Frame(root)
    seed_row.grid(row=2, column=0, columnspan=3, sticky="w", padx=8, pady=4)
    tk.Label(seed_row, text="Seed (optional):").pack(side="left")
    seed = tk.Entry(seed_row, width=10)
    seed.pack(side="left", padx=4)
    error = tk.Label(root, text="", fg="red")
    error.grid(row=3, column=0, columnspan=3, sticky="w", padx=8)

    def another() -> None:
        if len(prompts) >= MAX_PROMPTS:
            error.config(text=f"At most {MAX_PROMPTS} prompts go in one edit.")
            return
        prompts.append(tk.Entry(fields, width=56))
        prompts[-1].pack(fill="x", pady=(2, 0))
        prompts[-1].focus_set()

    def submit(_event=None) -> None:
        texts = [e.get().strip() for e in prompts if e.get().strip()]
        seed_text = seed.get().strip()
        if not texts:
            error.config(text="Type a prompt, e.g. 'a watercolor painting'.")
            return
        if seed_text and not seed_text.isdigit():
            error.config(text="The seed is a whole number of 0 or more, or empty.")
            return
        answer[0] = ("submit", texts, int(seed_text) if seed_text else None)
        root.destroy()

    def panel() -> None:
        answer[0] = ("panel", None, None)
        root.destroy()

    buttons = tk.Frame(root)
    buttons.grid(row=4, column=0, columnspan=3, sticky="e", padx=8, pady=8)
    tk.Button(buttons, text="Cancel", command=root.destroy).pack(side="right")
    tk.Button(buttons, text="Open panel...", command=panel).pack(side="right", padx=4)
    tk.Button(buttons, text="Edit", default="active", command=submit).pack(side="right")
    tk.Button(buttons, text="+ Another look", command=another).pack(side="left")
    root.bind("<Return>", submit)
    root.bind("<Escape>", lambda _e: root.destroy())
    prompts[0].focus_force()
    root.mainloop()
    return answer[0]
