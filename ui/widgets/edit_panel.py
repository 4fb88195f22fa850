"""The edit form: prompt (and more prompts, variants, edited in the same job), negative prompt,
seed, presets; advanced parameters folded away; submit; and the live progress of the version
on screen with its cancel button."""

from __future__ import annotations

import random

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bridge.wire.edit_params import MAX_VARIANTS
from bridge.wire.lifecycle import JobState
from ui.model.presets import EditForm
from ui.model.session import PanelSession
from ui.widgets.matte_row import MatteRow


class _PromptEdit(QPlainTextEdit):
    """A prompt box where Escape hands the keyboard back to the viewer (and its I/O/J/K/L keys)."""

    def __init__(self, placeholder: str, lines: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setPlaceholderText(placeholder)
        self.setTabChangesFocus(True)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + 12)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape and self.window() is not None:
            viewer = getattr(self.window(), "viewer", None)
            if viewer is not None:
                viewer.setFocus()
                return
        super().keyPressEvent(event)


class EditPanel(QWidget):
    def __init__(self, session: PanelSession, submit_action, cancel_action, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setMinimumWidth(280)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)

        presets = QHBoxLayout()
        self.preset_box = QComboBox()
        self.preset_box.setPlaceholderText("Presets")
        self.preset_box.setMinimumContentsLength(14)
        self.preset_box.setToolTip("Load a saved prompt preset")
        self.preset_box.activated.connect(self._preset_chosen)
        save = QToolButton()
        save.setText("Save…")
        save.setToolTip("Save the prompt, negative prompt, seed and parameters as a named preset")
        save.clicked.connect(self._save_preset)
        delete = QToolButton()
        delete.setText("Delete")
        delete.clicked.connect(self._delete_preset)
        presets.addWidget(self.preset_box, 1)
        presets.addWidget(save)
        presets.addWidget(delete)
        layout.addLayout(presets)

        title = QLabel("Prompt")
        title.setObjectName("section")
        layout.addWidget(title)
        self.prompt = _PromptEdit("What the edited clip should look like, e.g. a watercolor painting", 3)
        layout.addWidget(self.prompt)
        # Variants: more prompts in the same job, one row each (its box and a remove button).
        self.variant_edits: list[_PromptEdit] = []
        self._variant_rows: list[QWidget] = []
        self.variants_box = QVBoxLayout()
        self.variants_box.setSpacing(4)
        layout.addLayout(self.variants_box)
        self.add_variant_button = QToolButton()
        self.add_variant_button.setText("+ Variant")
        self.add_variant_button.setToolTip(
            "Another prompt edited in the same job (the analysis of the clip is shared): every variant's result "
            f"side by side in the viewer's Variants mode (5), each kept in the history; up to {MAX_VARIANTS}")
        self.add_variant_button.clicked.connect(lambda: self.add_variant("", focus=True))
        layout.addWidget(self.add_variant_button)
        self.negative = _PromptEdit("Negative prompt (empty: the server's default)", 2)
        layout.addWidget(self.negative)

        seed_row = QHBoxLayout()
        seed_row.addWidget(QLabel("Seed"))
        self.seed = QSpinBox()
        self.seed.setRange(*_int_range("seed"))
        seed_row.addWidget(self.seed, 1)
        dice = QToolButton()
        dice.setText("Random")
        dice.setToolTip("A new random seed")
        dice.clicked.connect(lambda: self.seed.setValue(random.randint(*_int_range("seed"))))
        seed_row.addWidget(dice)
        layout.addLayout(seed_row)
        self.matte_row = MatteRow(session.matte)
        layout.addWidget(self.matte_row)

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.toggled.connect(self._fold)
        layout.addWidget(self.advanced_toggle)
        self.advanced = QWidget()
        form = QFormLayout(self.advanced)
        form.setContentsMargins(12, 0, 0, 0)
        self.steps = QSpinBox()
        # Spin-box bounds from the one table of edit parameters (bridge/wire/edit_params.py).
        self.steps.setRange(*_int_range("steps"))
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(*EditForm.spin_range("guidance"))
        self.guidance.setSingleStep(0.5)
        self.kf_interval = QSpinBox()
        self.kf_interval.setRange(*_int_range("kf_interval"))
        self.short_side = QSpinBox()
        self.short_side.setRange(*_int_range("short_side"))
        self.short_side.setSingleStep(64)
        self.short_side.setSuffix(" px")
        self.short_side.setSpecialValueText("the model's own")  # 0: 512 for SD 1.x/2.x, 1024 for SDXL
        # LoRA styles as one line, "path:scale, path:scale" (bridge/wire/lora_spec.py).
        self.loras = QLineEdit()
        self.loras.setPlaceholderText("style.safetensors:0.8, ...")
        self.loras.setToolTip("LoRA styles for the model's family, each PATH_OR_ID[:SCALE], separated by commas")
        self.model = QComboBox()
        self.model.setToolTip("The server's models; the first is its default")
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Keyframe every", self.kf_interval)
        form.addRow("Working size", self.short_side)
        form.addRow("LoRA", self.loras)
        form.addRow("Model", self.model)
        self.advanced.setVisible(False)
        layout.addWidget(self.advanced)

        self.range_label = QLabel("")
        self.range_label.setObjectName("dim")
        self.range_label.setWordWrap(True)  # a long clip name wraps instead of being cut off
        layout.addWidget(self.range_label)
        self.submit_button = QPushButton()
        self.submit_button.setObjectName("primary")
        self.submit_button.clicked.connect(submit_action.trigger)
        self.submit_button.setText(f"Submit  ({submit_action.shortcut().toString()})")
        layout.addWidget(self.submit_button)

        live = QLabel("Version on screen")
        live.setObjectName("section")
        layout.addWidget(live)
        self.status = QLabel("Nothing running")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        # Which prompt of a several-prompt job the result, wipe and side by side show (a click on
        # its tile in the viewer's Variants mode picks it too).
        self.variant_box = QComboBox()
        self.variant_box.setToolTip("The variant shown as the result (a click on its tile in Variants, key 5, "
                                    "does the same)")
        self.variant_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.variant_box.setMinimumContentsLength(10)
        self.variant_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.variant_box.activated.connect(lambda index: session.viewer.set_variant(index))
        layout.addWidget(self.variant_box)
        bar_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        bar_row.addWidget(self.progress, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("danger")
        self.cancel_button.setToolTip(f"Cancel the version on screen ({cancel_action.shortcut().toString()})")
        self.cancel_button.clicked.connect(cancel_action.trigger)
        bar_row.addWidget(self.cancel_button)
        layout.addLayout(bar_row)
        layout.addStretch(1)

        self.set_form(session.last_form)
        session.form_loaded.connect(self.set_form)
        session.presets.changed.connect(self._presets_changed)
        session.connection.changed.connect(self._models_changed)
        session.clip.marks_changed.connect(self._range_changed)
        session.clip.clip_changed.connect(self._range_changed)
        session.viewer.changed.connect(self._progress_changed)
        session.jobs.job_changed.connect(self._job_changed)
        session.viewer.changed.connect(self._variants_changed)
        session.jobs.job_changed.connect(self._variants_changed)
        self._presets_changed()
        self._models_changed()
        self._range_changed()
        self._progress_changed()
        self._variants_changed()

    # --- the form ---

    def form(self) -> EditForm:
        model = self.model.currentData() or ""
        return EditForm(prompt=self.prompt.toPlainText(), negative_prompt=self.negative.toPlainText(),
                        seed=self.seed.value(), steps=self.steps.value(), guidance=self.guidance.value(),
                        kf_interval=self.kf_interval.value(), short_side=self.short_side.value(), model=model,
                        loras=self.loras.text(), variants=tuple(edit.toPlainText() for edit in self.variant_edits))

    def add_variant(self, text: str = "", focus: bool = False) -> _PromptEdit | None:
        """One more prompt row under the prompt (none past the table's bound on variants)."""
        if len(self.variant_edits) >= MAX_VARIANTS:
            return None
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.setSpacing(4)
        edit = _PromptEdit("", 2)
        edit.setPlainText(text)
        remove = QToolButton()
        remove.setText("✕")
        remove.setToolTip("Remove this variant")
        remove.clicked.connect(lambda: self.remove_variant(self.variant_edits.index(edit)))
        line.addWidget(edit, 1)
        line.addWidget(remove, 0, Qt.AlignmentFlag.AlignTop)
        self.variants_box.addWidget(row)
        self.variant_edits.append(edit)
        self._variant_rows.append(row)
        self._number_variants()
        if focus:
            edit.setFocus()
        return edit

    def remove_variant(self, index: int) -> None:
        self.variant_edits.pop(index)
        row = self._variant_rows.pop(index)
        self.variants_box.removeWidget(row)
        row.setParent(None)  # off the form now (deleteLater waits for the event loop)
        row.deleteLater()
        self._number_variants()

    def _number_variants(self) -> None:
        for n, edit in enumerate(self.variant_edits):
            edit.setPlaceholderText(f"Variant {n + 2}: another look in the same job, e.g. an oil painting")
        self.add_variant_button.setEnabled(len(self.variant_edits) < MAX_VARIANTS)

    def set_form(self, form: EditForm) -> None:
        self.prompt.setPlainText(form.prompt)
        while self.variant_edits:
            self.remove_variant(len(self.variant_edits) - 1)
        for text in form.variants:
            self.add_variant(text)
        self.negative.setPlainText(form.negative_prompt)
        self.seed.setValue(form.seed)
        self.steps.setValue(form.steps)
        self.guidance.setValue(form.guidance)
        self.kf_interval.setValue(form.kf_interval)
        self.short_side.setValue(form.short_side)
        self.loras.setText(form.loras)
        index = self.model.findData(form.model) if form.model else 0
        self.model.setCurrentIndex(max(0, index))

    def _fold(self, open_: bool) -> None:
        self.advanced.setVisible(open_)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)

    def _models_changed(self) -> None:
        current = self.model.currentData()
        self.model.clear()
        models = self.session.connection.models
        default = self.session.connection.welcome.default_model if self.session.connection.welcome else ""
        self.model.addItem("server default" + (f" ({_short(default)})" if default else ""), "")
        self.model.setItemData(0, default or "the server's default model", Qt.ItemDataRole.ToolTipRole)
        for m in models:
            self.model.addItem(_short(m), m)
            self.model.setItemData(self.model.count() - 1, m, Qt.ItemDataRole.ToolTipRole)
        self.model.setCurrentIndex(max(0, self.model.findData(current)) if current else 0)

    def _range_changed(self) -> None:
        clip = self.session.clip
        if clip.current is None:
            self.range_label.setText("Open a clip to edit (Ctrl+O)")
            self.submit_button.setEnabled(False)
            return
        first, last = clip.range
        self.range_label.setText(f"Edits frames {first}–{last} ({last - first + 1}) of {clip.current.name}")
        self.submit_button.setEnabled(True)

    # --- presets ---

    def _presets_changed(self) -> None:
        self.preset_box.clear()
        for name in self.session.presets.names():
            self.preset_box.addItem(name)
        self.preset_box.setCurrentIndex(-1)

    def _preset_chosen(self, index: int) -> None:
        name = self.preset_box.itemText(index)
        form = self.session.presets.presets.get(name)
        if form is not None:
            self.set_form(form)

    def _save_preset(self) -> None:
        name, ok = QInputDialog.getText(self, "Save prompt preset", "Preset name:")
        if ok and name.strip():
            self.session.presets.save(name, self.form())

    def _delete_preset(self) -> None:
        name = self.preset_box.currentText()
        if name:
            self.session.presets.delete(name)

    # --- progress of the version on screen ---

    def _variants_changed(self, *_: object) -> None:
        """The selector lists the prompts of the job on screen (hidden for a one-prompt job)."""
        job = self.session.viewer.job
        view = self.session.jobs.get(job) if job else None
        prompts = view.prompts if view is not None and view.variants else []
        items = [f"Showing {n + 1} of {len(prompts)} · {prompt}" for n, prompt in enumerate(prompts)]
        if items != [self.variant_box.itemText(i) for i in range(self.variant_box.count())]:
            self.variant_box.clear()
            for n, item in enumerate(items):
                self.variant_box.addItem(item)
                self.variant_box.setItemData(n, prompts[n], Qt.ItemDataRole.ToolTipRole)
        self.variant_box.setVisible(bool(items))
        if items:
            self.variant_box.setCurrentIndex(min(self.session.viewer.variant, len(items) - 1))

    def _job_changed(self, job: str) -> None:
        if job == self.session.viewer.job:
            self._progress_changed()

    def _progress_changed(self) -> None:
        job = self.session.viewer.job
        view = self.session.jobs.get(job) if job else None
        if view is None:
            version = self.session.history.get(job) if job else None
            self.status.setText(f"{version.prompt!r}: {version.state}" if version else "Nothing running")
            self.progress.setValue(1000 if version and version.state == JobState.DONE else 0)
            self.cancel_button.setEnabled(False)
            return
        shown = f" · variant {self.session.viewer.variant + 1} of {len(view.prompts)}" if view.variants else ""
        self.status.setText(f"{view.prompt_text!r}{shown} · {view.status_text}")
        self.progress.setValue(int(view.fraction * 1000))
        self.cancel_button.setEnabled(not view.terminal)


def _int_range(name: str) -> tuple[int, int]:
    low, high = EditForm.spin_range(name)
    return int(low), int(high)


def _short(model: str) -> str:
    """A model as the box can show it: a folder or file by its name (the tooltip has the path)."""
    name = model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] if ("/" in model and not _hub_id(model)) else model
    return name if len(name) <= 28 else "…" + name[-27:]


def _hub_id(model: str) -> bool:
    """owner/name as the hub writes it (not a path: no leading slash, no drive, one slash)."""
    return not model.startswith(("/", "~", ".")) and ":" not in model and model.count("/") == 1
