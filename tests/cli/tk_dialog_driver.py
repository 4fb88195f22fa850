"""Drives bridge.editors.prompt_dialog in a real Tk (under Xvfb): types into the fields, presses a button, prints the answer.

    xvfb-run -a python tests/cli/tk_dialog_driver.py PROMPT SEED BUTTON [SCREENSHOT.png]

PROMPT "a|b|c" types three prompts: "+ Another look" is pressed for each after the first.
"""

import sys
import tkinter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bridge.editors import prompt_dialog  # noqa: E402

prompt, seed, button = sys.argv[1:4]
shot = sys.argv[4] if len(sys.argv) > 4 else None
mainloop = tkinter.Tk.mainloop


def widgets(root):
    """Every widget, in the order the dialog made them."""
    found = [root]
    for child in root.winfo_children():
        found.extend(widgets(child))
    return found


def drive(root, n=0):
    def act():
        def entries():
            return [w for w in widgets(root) if isinstance(w, tkinter.Entry)]

        def press(text):
            [w for w in widgets(root) if isinstance(w, tkinter.Button) and w.cget("text") == text][0].invoke()

        looks = prompt.split("|")
        for _ in looks[1:]:
            press("+ Another look")
        for entry, text in zip(entries()[:-1], looks):  # the last field is the seed
            entry.insert(0, text)
        entries()[-1].insert(0, seed)
        root.update()
        if shot:
            from PIL import ImageGrab

            x, y = root.winfo_rootx(), root.winfo_rooty()
            ImageGrab.grab(bbox=(x, y, x + root.winfo_width(), y + root.winfo_height())).save(shot)
        pressed = [w for w in widgets(root) if isinstance(w, tkinter.Button) and w.cget("text") == button]
        pressed[0].invoke()
        try:
            still_open = bool(root.winfo_exists())
        except tkinter.TclError:  # the button closed the dialog
            still_open = False
        if still_open:  # a refused answer keeps the dialog open: show why, then close
            print("ERROR", next(w.cget("text") for w in widgets(root)
                                if isinstance(w, tkinter.Label) and w.cget("fg") == "red"))
            root.destroy()

    root.after(300, act)
    mainloop(root, n)


tkinter.Tk.mainloop = drive
print("ANSWER", prompt_dialog.ask(["carphone_pristine.mp4"]))
