"""Generate a typed Python package from a FIX dictionary (`fix_spec.dictionary`).

For a dictionary the generator writes one package:

- ``tags.py``: a constant per field (``MDEntryPx: Final = 270``), the tag-to-name map and
  which LENGTH field carries the size of each DATA field;
- ``enums.py``: an enum per field with values (``MDEntryType.BID == "0"``): ``IntEnum``
  for integer fields, ``StrEnum`` for the others;
- ``groups.py``: the entry classes of the repeating groups defined inside components,
  named after the component and the group (``MDIncGrpNoMDEntries``);
- ``header.py``: ``Header``, ``Trailer`` and ``Message``, the base of all messages;
- ``messages/<snake_name>.py``: one module per message, one class each;
- ``md_layout.py``: when the dictionary has W, X and Y, what the market data fast path
  (`fix_spec.md_decoder`) reads of them: the tags of each level, the required ones, the
  nested groups and DATA fields it leaves to the codec, the NoMDEntries delimiters and the
  valid codes of MDEntryType, MDUpdateAction and MDReqRejReason;
- ``__init__.py``: the codec bound to this dictionary (``decode``, ``encode``),
  ``MESSAGES`` by MsgType and, with ``md_layout.py``, the fast decoder ``MD_DECODER``.

Components are flattened: their fields become attributes of the message (or group entry)
that includes them, in dictionary order. The wire format has no component boundaries, the
FIX specification names a field once per level, and so ``entry.symbol`` reads like the
spec where ``entry.instrument.symbol`` would add an object per component to build on every
decode. Repeating groups stay classes, nested as deep as the dictionary nests them, and a
message class names the entry classes of its own groups (``MarketDataIncrementalRefresh.
NoMDEntries``). A field of an optional component is optional on the flattened class, as
the component may be absent.

Required fields are keyword arguments without a default. Header fields are all optional
on the class, since a session fills them in; the codec checks the dictionary's required
header fields on encode and decode. BeginString, BodyLength, MsgType and CheckSum are
framing: the codec computes them.

Output is deterministic: generating twice gives identical bytes, so a test can compare the
committed packages with a fresh generation.
"""

from __future__ import annotations

import keyword
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fix_spec.dictionary import (
    ComponentRef,
    Dictionary,
    DictionaryError,
    FieldDef,
    FieldRef,
    GroupDef,
    Member,
    load_dictionary,
    to_quickfix_xml,
)
from fix_spec.runtime import ValueType, value_type

FRAMING_TAGS = frozenset({8, 9, 35, 10})
_ENUM_TYPES = {ValueType.STRING, ValueType.CHAR, ValueType.INT, ValueType.MULTIPLE_VALUES}
_PY_TYPES = {
    ValueType.INT: "int",
    ValueType.DECIMAL: "Decimal",
    ValueType.BOOLEAN: "bool",
    ValueType.UTC_TIMESTAMP: "int",
    ValueType.DATA: "bytes",
}


def snake_case(name: str) -> str:
    """FIX names to attribute names: MDEntryPx -> md_entry_px, NoMDEntries -> no_md_entries."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    s = re.sub(r"[^a-z0-9_]", "_", s)
    if s[:1].isdigit():
        s = "f_" + s
    if keyword.iskeyword(s) or s in {"header", "trailer", "extra_fields"}:
        s += "_"
    return s


def enum_member_name(description: str, value: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", description.upper()).strip("_") or f"V{value}"
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if name[0].isdigit():
        name = "V" + name
    if name in taken:
        name = f"{name}_{re.sub(r'[^A-Za-z0-9]', '_', value)}"
    taken.add(name)
    return name


@dataclass
class _FieldSlot:
    field: FieldDef
    attr: str
    required: bool


@dataclass
class _GroupSlot:
    count: FieldDef
    attr: str
    required: bool
    entry_class: str


@dataclass
class _ClassSpec:
    name: str
    doc: str
    slots: list[_FieldSlot | _GroupSlot]
    module: str  # "groups", "header" or "messages.<snake>"
    base: str = "FixRecord"
    msg_type: str | None = None
    msg_name: str | None = None
    aliases: list[tuple[str, str]] = field(default_factory=list)
    #: Constructor arguments all optional (header, trailer); the codec checks `required`.
    optional_init: bool = False


class _Builder:
    def __init__(self, d: Dictionary) -> None:
        self.d = d
        self.classes: dict[str, _ClassSpec] = {}

    def flatten(
        self, members: Iterable[Member], owner: str, module: str, *, required: bool = True
    ) -> tuple[list[_FieldSlot | _GroupSlot], list[tuple[str, str]]]:
        slots: list[_FieldSlot | _GroupSlot] = []
        aliases: list[tuple[str, str]] = []
        for m in members:
            if isinstance(m, FieldRef):
                f = self.d.field(m.name)
                if f.tag in FRAMING_TAGS:
                    continue
                slots.append(_FieldSlot(f, snake_case(f.name), m.required and required))
            elif isinstance(m, ComponentRef):
                comp = self.d.components[m.name]
                sub, sub_aliases = self.flatten(
                    comp.members,
                    comp.name,
                    "groups",
                    required=required and m.required,
                )
                slots.extend(sub)
                aliases.extend(sub_aliases)
            else:
                cls_name = f"{owner}{m.name}"
                self.group_class(m, cls_name, module)
                count = self.d.field(m.name)
                slots.append(
                    _GroupSlot(count, snake_case(m.name), m.required and required, cls_name)
                )
                aliases.append((m.name, cls_name))
        seen: dict[str, int] = {}
        for s in slots:
            if s.attr in seen:
                raise DictionaryError(f"{owner}: field {s.attr} appears twice once flattened")
            seen[s.attr] = 1
        return slots, aliases

    def group_class(self, g: GroupDef, cls_name: str, module: str) -> None:
        if cls_name in self.classes:
            return
        slots, aliases = self.flatten(g.members, cls_name, module)
        self.classes[cls_name] = _ClassSpec(
            name=cls_name,
            doc=f"An entry of repeating group {g.name} ({self.d.field(g.name).tag}).",
            slots=slots,
            module=module,
            aliases=aliases,
        )


def _annotation(slot: _FieldSlot | _GroupSlot, enum_names: set[str]) -> str:
    if isinstance(slot, _GroupSlot):
        return f"Sequence[{slot.entry_class}]"
    vtype = value_type(slot.field.type)
    if slot.field.name in enum_names and vtype is not ValueType.MULTIPLE_VALUES:
        return f"enums.{slot.field.name}"
    return _PY_TYPES.get(vtype, "str")


def _enum_fields(d: Dictionary) -> list[FieldDef]:
    return [
        f
        for f in sorted(d.fields.values(), key=lambda f: f.tag)
        if f.values and value_type(f.type) in _ENUM_TYPES
    ]


def _header_line(sources: Sequence[str]) -> str:
    names = " + ".join(Path(s).name for s in sources)
    return f"# Code generated by mdfeed codegen fix from {names}. DO NOT EDIT.\n"


def _render_class(spec: _ClassSpec, enum_names: set[str]) -> list[str]:
    lines = [
        "",
        "",
        "@dataclass(kw_only=True, eq=True, init=False, repr=False)",
        f"class {spec.name}({spec.base}):",
        f'    """{spec.doc}"""',
        "",
    ]
    if spec.msg_type is not None:
        lines.append(f"    MSG_TYPE: ClassVar[str] = {spec.msg_type!r}")
        lines.append(f"    MSG_NAME: ClassVar[str] = {spec.msg_name!r}")
        lines.append("")
    for alias, target in spec.aliases:
        lines.append(f"    {alias} = {target}")
    if spec.aliases:
        lines.append("")
    params: list[str] = []
    for slot in spec.slots:
        ann = _annotation(slot, enum_names)
        if isinstance(slot, _GroupSlot):
            lines.append(f"    #: {slot.count.name} ({slot.count.tag}): repeating group")
        else:
            lines.append(f"    #: {slot.field.name} ({slot.field.tag}), {slot.field.type}")
        if slot.required and not spec.optional_init:
            declaration = f"{slot.attr}: {ann}"
        elif isinstance(slot, _GroupSlot):
            declaration = f"{slot.attr}: {ann} = ()"
        else:
            declaration = f"{slot.attr}: {ann} | None = None"
        lines.append(f"    {declaration}")
        params.append(declaration)
    params.append("extra_fields: Sequence[tuple[int, str]] = ()")
    if spec.msg_type is not None:
        params += ["header: Header | None = None", "trailer: Trailer | None = None"]
    # Only the values given are stored; an unset attribute reads the class default. That
    # keeps instances small and lets the encoder visit only the fields that are set.
    lines += ["", "    def __init__(", "        self,", "        *,"]
    lines += [f"        {p}," for p in params]
    lines += ["    ) -> None:", "        init_record(self, locals())"]
    if spec.msg_type is not None:
        lines += [
            "        if header is None:",
            "            self.header = Header()",
            "        if trailer is None:",
            "            self.trailer = Trailer()",
        ]
    return lines


def _render_members(spec: _ClassSpec, enum_names: set[str]) -> list[str]:
    lines = [f"{spec.name}._FIX_MEMBERS = ("]
    for slot in spec.slots:
        if isinstance(slot, _GroupSlot):
            lines.append(
                f"    GroupMember({slot.count.tag}, {slot.attr!r}, {slot.entry_class}, "
                f"{slot.required}),"
            )
        else:
            vtype = value_type(slot.field.type)
            enum_ref = f"enums.{slot.field.name}" if slot.field.name in enum_names else "None"
            lines.append(
                f"    FieldMember({slot.field.tag}, {slot.attr!r}, ValueType.{vtype.name}, "
                f"{enum_ref}, {slot.required}),"
            )
    lines.append(")")
    return lines


def _module_imports(extra: Sequence[str] = ()) -> list[str]:
    return [
        "from __future__ import annotations",
        "",
        "from collections.abc import Sequence",
        "from dataclasses import dataclass",
        "from decimal import Decimal",
        "from typing import ClassVar",
        "",
        "from fix_spec.runtime import (",
        "    FieldMember,",
        "    FixMessage,",
        "    FixRecord,",
        "    GroupMember,",
        "    ValueType,",
        "    init_record,",
        ")",
        *extra,
    ]


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    written.append(path)


@dataclass(frozen=True)
class PackageSpec:
    """What to generate: a package name and the dictionary files it comes from."""

    package: str
    title: str
    dictionary: str
    transport: str | None = None
    extensions: tuple[str, ...] = ()
    write_merged_xml: bool = False


def generate_package(spec: PackageSpec, dictionaries_dir: Path, out_dir: Path) -> list[Path]:
    """Generate `spec` into `out_dir`/`spec.package`; return the files written."""
    d = load_dictionary(
        dictionaries_dir / spec.dictionary,
        transport=dictionaries_dir / spec.transport if spec.transport else None,
        extensions=[dictionaries_dir / e for e in spec.extensions],
    )
    pkg_dir = out_dir / spec.package
    _clear_generated(pkg_dir)
    sources = [spec.dictionary] if spec.transport is None else [spec.transport, spec.dictionary]
    sources += list(spec.extensions)
    head = _header_line(sources)
    written: list[Path] = []

    builder = _Builder(d)
    enum_fields = _enum_fields(d)
    enum_names = {f.name for f in enum_fields}

    header_slots, header_aliases = builder.flatten(d.header, "Header", "groups")
    trailer_slots, trailer_aliases = builder.flatten(d.trailer, "Trailer", "groups")
    header_classes = [
        _ClassSpec("Header", "The standard header, less the framing fields.", header_slots,
                   "header", aliases=header_aliases, optional_init=True),
        _ClassSpec("Trailer", "The standard trailer, less CheckSum.", trailer_slots, "header",
                   aliases=trailer_aliases, optional_init=True),
    ]
    message_specs: list[_ClassSpec] = []
    for msg in d.messages.values():
        module = f"messages.{snake_case(msg.name)}"
        slots, aliases = builder.flatten(msg.members, msg.name, module)
        message_specs.append(
            _ClassSpec(
                name=msg.name,
                doc=f"{msg.name} (MsgType {msg.msg_type}, {msg.category}).",
                slots=slots,
                module=module,
                base="Message",
                msg_type=msg.msg_type,
                msg_name=msg.name,
                aliases=aliases,
            )
        )

    # tags.py
    lines = [
        head,
        f'"""Field tags of {spec.title}: one constant per field, named as in the dictionary."""',
        "",
        "from typing import Final",
        "",
    ]
    for f in sorted(d.fields.values(), key=lambda f: f.tag):
        lines.append(f"{f.name}: Final = {f.tag}")
    lines += [
        "",
        "#: Tag to field name, for error messages.",
        "FIELD_NAMES: Final[dict[int, str]] = {",
    ]
    lines += [f"    {f.tag}: {f.name!r}," for f in sorted(d.fields.values(), key=lambda f: f.tag)]
    lines += ["}", ""]
    lines += ["#: DATA field tag to the LENGTH field tag that gives its size.",
              "DATA_LENGTHS: Final[dict[int, int]] = {"]  # fmt: skip
    lines += [f"    {data}: {length}," for data, length in sorted(_data_lengths(d).items())]
    lines += ["}", ""]
    _write(pkg_dir / "tags.py", "\n".join(lines), written)

    # enums.py
    lines = [
        head,
        f'"""Enumerated field values of {spec.title}."""',
        "",
        "from enum import IntEnum, StrEnum",
    ]
    for f in enum_fields:
        vtype = value_type(f.type)
        base = "IntEnum" if vtype is ValueType.INT else "StrEnum"
        lines += [
            "",
            "",
            f"class {f.name}({base}):",
            f'    """{f.name} ({f.tag}), {f.type}."""',
            "",
        ]
        taken: set[str] = set()
        for v in f.values:
            if vtype is ValueType.INT and not re.fullmatch(r"-?\d+", v.value):
                continue
            name = enum_member_name(v.description, v.value, taken)
            literal = v.value if vtype is ValueType.INT else repr(v.value)
            lines.append(f"    {name} = {literal}")
    lines.append("")
    _write(pkg_dir / "enums.py", "\n".join(lines), written)

    group_specs = [c for c in builder.classes.values() if c.module == "groups"]
    # groups.py (entry classes of groups in components and in the header/trailer), ordered so
    # a class is defined before a class that uses it.
    lines = [
        head,
        f'"""Entry classes of the repeating groups defined in {spec.title} components."""',
        "",
        *_module_imports(["from . import enums"]),
    ]
    ordered = _dependency_order(group_specs, builder.classes)
    for c in ordered:
        lines += _render_class(c, enum_names)
    lines.append("")
    for c in ordered:
        lines += _render_members(c, enum_names)
    lines.append("")
    _write(pkg_dir / "groups.py", _tidy("\n".join(lines)), written)

    # header.py
    lines = [
        head,
        f'"""Header, trailer and the message base class of {spec.title}."""',
        "",
        *_module_imports(["from . import enums"]),
        "from dataclasses import field",
    ]
    header_used = sorted(
        {t for c in header_classes for _, t in c.aliases}
        | {s.entry_class for c in header_classes for s in c.slots if isinstance(s, _GroupSlot)}
    )
    if header_used:
        lines.append(f"from .groups import {', '.join(header_used)}")
    for c in header_classes:
        lines += _render_class(c, enum_names)
    lines += [
        "",
        "",
        "@dataclass(kw_only=True, eq=True, init=False, repr=False)",
        "class Message(FixMessage):",
        f'    """Base of the {spec.title} messages: every message has a header and a trailer."""',
        "",
        "    header: Header = field(default_factory=Header)",
        "    trailer: Trailer = field(default_factory=Trailer)",
        "",
        "",
    ]
    for c in header_classes:
        lines += _render_members(c, enum_names)
    lines.append("")
    _write(pkg_dir / "header.py", _tidy("\n".join(lines)), written)

    # messages/<name>.py
    by_module: dict[str, list[_ClassSpec]] = {}
    for c in builder.classes.values():
        if c.module.startswith("messages."):
            by_module.setdefault(c.module, []).append(c)
    message_modules: list[tuple[str, str, str]] = []
    for m in message_specs:
        local_groups = _dependency_order(by_module.get(m.module, []), builder.classes)
        used = _used_names(m, local_groups)
        shared = sorted(n for n in used if builder.classes.get(n, m).module == "groups")
        imports = ["from .. import enums", "from ..header import Header, Message, Trailer"]
        if shared:
            imports.append(f"from ..groups import {', '.join(shared)}")
        lines = [
            head,
            f'"""{m.name} (MsgType {m.msg_type}) of {spec.title}."""',
            "",
            *_module_imports(imports),
        ]
        for c in [*local_groups, m]:
            lines += _render_class(c, enum_names)
        lines.append("")
        for c in [*local_groups, m]:
            lines += _render_members(c, enum_names)
        lines.append("")
        module_name = m.module.split(".", 1)[1]
        _write(pkg_dir / "messages" / f"{module_name}.py", _tidy("\n".join(lines)), written)
        message_modules.append((module_name, m.name, m.msg_type or ""))

    lines = [head, f'"""The {spec.title} messages, one module each."""', ""]
    lines += [f"from .{mod} import {name}" for mod, name, _ in message_modules]
    lines += ["", "__all__ = ["]
    lines += [f"    {name!r}," for _, name, _ in sorted(message_modules, key=lambda t: t[1])]
    lines += ["]", ""]
    _write(pkg_dir / "messages" / "__init__.py", "\n".join(lines), written)

    # md_layout.py
    md_layout = _md_layout_module(
        head,
        spec=spec,
        d=d,
        header_classes=header_classes,
        message_specs=message_specs,
        classes=builder.classes,
    )
    if md_layout is not None:
        _write(pkg_dir / "md_layout.py", md_layout, written)

    # __init__.py
    merged = ""
    if spec.write_merged_xml:
        _write(pkg_dir / "dictionary.xml", _xml_header(sources) + to_quickfix_xml(d), written)
        merged = (
            "\n#: The merged dictionary as one QuickFIX data dictionary file (in this package).\n"
            'DICTIONARY_XML: Final = "dictionary.xml"\n'
        )
    files = ", ".join(repr(s) for s in sources)
    lines = [
        head,
        f'"""{spec.title}: typed messages and their codec.',
        "",
        "``decode(data)`` turns wire bytes into a message object and ``encode(message)`` back;",
        "errors raise ``fix_spec.codec.FixCodecError``.",
        '"""',
        "",
        "from typing import Final",
        "",
        "from fix_spec.codec import Codec",
        "from fix_spec.runtime import FixMessage",
        "from . import enums, tags",
        "from .header import Header, Message, Trailer",
        "from .messages import (",
        *[f"    {name}," for _, name, _ in message_modules],
        ")",
    ]
    lines += [
        "",
        f"BEGIN_STRING: Final = {d.begin_string!r}",
        "#: The dictionary files this package was generated from, in fix_spec/dictionaries.",
        f"DICTIONARY_FILES: Final = ({files},)",
        merged,
        "#: Message classes by MsgType.",
        "MESSAGES: Final[dict[str, type[Message]]] = {",
    ]
    lines += [f"    {t!r}: {name}," for _, name, t in message_modules]
    lines += [
        "}",
        "",
        "CODEC: Final = Codec(",
        "    begin_string=BEGIN_STRING,",
        "    header=Header,",
        "    trailer=Trailer,",
        "    messages=MESSAGES,",
        "    field_names=tags.FIELD_NAMES,",
        "    data_lengths=tags.DATA_LENGTHS,",
        ")",
        "",
        "",
        "def decode(data: bytes) -> FixMessage:",
        '    """Decode one message; raises fix_spec.codec.FixDecodeError."""',
        "    return CODEC.decode(data)",
        "",
        "",
        "def encode(message: FixMessage) -> bytes:",
        '    """Encode one message with BodyLength and CheckSum; raises FixEncodeError."""',
        "    return CODEC.encode(message)",
        "",
    ]
    if md_layout is not None:
        lines += [
            "",
            "#: The market data fast path: raw W, X and Y into fix_spec.md_columns.MdMessage.",
            "MD_DECODER: Final = MdDecoder(md_layout.LAYOUT)",
            "",
        ]
        at = lines.index("from fix_spec.runtime import FixMessage")
        lines[at + 1 : at + 2] = [
            "from fix_spec.md_decoder import MdDecoder",
            "from . import enums, md_layout, tags",
        ]
    _write(pkg_dir / "__init__.py", "\n".join(lines), written)
    _write(pkg_dir / "py.typed", "", written)
    return written


#: The market data messages the fast path reads, and the enums whose codes it checks.
_MD_MESSAGES = ("W", "X", "Y")
_MD_ENUMS = (
    ("MD_ENTRY_TYPE_CODES", "MDEntryType"),
    ("MD_UPDATE_ACTION_CODES", "MDUpdateAction"),
    ("MD_REQ_REJ_REASON_CODES", "MDReqRejReason"),
)


def _level_lines(
    name: str, doc: str, slots: Sequence[_FieldSlot | _GroupSlot], keep_group: int | None = None
) -> list[str]:
    tags = [s.count.tag if isinstance(s, _GroupSlot) else s.field.tag for s in slots]
    required = [t for t, s in zip(tags, slots, strict=True) if s.required]
    opaque = [
        t
        for t, s in zip(tags, slots, strict=True)
        if (isinstance(s, _GroupSlot) and t != keep_group)
        or (isinstance(s, _FieldSlot) and value_type(s.field.type) is ValueType.DATA)
    ]
    return [
        "",
        f"#: {doc}",
        f"{name}: Final = MdLevel(",
        f"    tags={tuple(tags)!r},",
        f"    required={tuple(required)!r},",
        f"    opaque={tuple(opaque)!r},",
        ")",
    ]


def _md_layout_module(
    head: str,
    *,
    spec: PackageSpec,
    d: Dictionary,
    header_classes: Sequence[_ClassSpec],
    message_specs: Sequence[_ClassSpec],
    classes: dict[str, _ClassSpec],
) -> str | None:
    """The md_layout module of a dictionary with W, X and Y; None without them."""
    by_type = {m.msg_type: m for m in message_specs}
    if not all(t in by_type for t in _MD_MESSAGES):
        return None
    entries_tag = d.field("NoMDEntries").tag
    lines = [
        head,
        f'"""What the market data fast path reads of {spec.title}: see fix_spec.md_decoder.',
        "",
        "Each level lists the tags the dictionary defines there (in dictionary order), the",
        "required ones, and the opaque ones (nested repeating groups, DATA fields), whose",
        "messages the decoder leaves to the typed codec. A NoMDEntries entry starts with its",
        "first tag, the group's delimiter.",
        '"""',
        "",
        "from typing import Final",
        "",
        "from fix_spec.md_decoder import MdLayout, MdLevel",
        "from .tags import DATA_LENGTHS, FIELD_NAMES",
        "",
        f"BEGIN_STRING: Final = {d.begin_string!r}",
    ]
    for const, field_name in _MD_ENUMS:
        codes = tuple(v.value for v in d.field(field_name).values)
        lines.append(f"#: Valid {field_name} ({d.field(field_name).tag}) codes; () for any value.")
        lines.append(f"{const}: Final = {codes!r}")
    header, trailer = header_classes
    lines += _level_lines("HEADER", "The standard header, less the framing fields.", header.slots)
    lines += _level_lines("TRAILER", "The standard trailer, less CheckSum.", trailer.slots)
    bodies: list[str] = []
    entries: list[str] = []
    for msg_type in _MD_MESSAGES:
        m = by_type[msg_type]
        name = f"{msg_type}_BODY"
        lines += _level_lines(name, f"{m.name} ({msg_type}).", m.slots, keep_group=entries_tag)
        bodies.append(f"{msg_type!r}: {name}")
        for slot in m.slots:
            if isinstance(slot, _GroupSlot) and slot.count.tag == entries_tag:
                entry = classes[slot.entry_class]
                entry_name = f"{msg_type}_ENTRY"
                lines += _level_lines(
                    entry_name, f"An entry of {m.name}'s NoMDEntries ({entry.name}).", entry.slots
                )
                entries.append(f"{msg_type!r}: {entry_name}")
    lines += [
        "",
        "LAYOUT: Final = MdLayout(",
        "    begin_string=BEGIN_STRING,",
        "    known_tags=FIELD_NAMES,",
        "    data_tags=DATA_LENGTHS,",
        "    field_names=FIELD_NAMES,",
        "    header=HEADER,",
        "    trailer=TRAILER,",
        f"    bodies={{{', '.join(bodies)}}},",
        f"    entries={{{', '.join(entries)}}},",
        "    md_entry_type_codes=MD_ENTRY_TYPE_CODES,",
        "    md_update_action_codes=MD_UPDATE_ACTION_CODES,",
        "    md_req_rej_reason_codes=MD_REQ_REJ_REASON_CODES,",
        ")",
        "",
    ]
    return "\n".join(lines)


def _clear_generated(pkg_dir: Path) -> None:
    """Remove an earlier generation, so a message dropped from a dictionary leaves no module."""
    init = pkg_dir / "__init__.py"
    if not init.exists():
        return
    if "Code generated by mdfeed codegen fix" not in init.read_text(encoding="utf-8")[:200]:
        raise DictionaryError(f"{pkg_dir} exists and was not generated by mdfeed: not replacing it")
    shutil.rmtree(pkg_dir)


def _xml_header(sources: Sequence[str]) -> str:
    names = " + ".join(Path(s).name for s in sources)
    return f"<!-- Code generated by mdfeed codegen fix from {names}. DO NOT EDIT. -->\n"


def _tidy(text: str) -> str:
    # Collapse the blank lines that rendering leaves before a module's first class.
    return re.sub(r"\n{4,}", "\n\n\n", text)


def _data_lengths(d: Dictionary) -> dict[int, int]:
    """Each DATA field's LENGTH field: the LENGTH field right before it in some member list."""
    pairs: dict[int, int] = {}

    def walk(members: Sequence[Member]) -> None:
        previous: FieldDef | None = None
        for m in members:
            if isinstance(m, FieldRef):
                f = d.field(m.name)
                if f.type == "DATA" and previous is not None and previous.type == "LENGTH":
                    pairs.setdefault(f.tag, previous.tag)
                previous = f
            else:
                previous = None
                if isinstance(m, GroupDef):
                    walk(m.members)

    walk(d.header)
    walk(d.trailer)
    for c in d.components.values():
        walk(c.members)
    for msg in d.messages.values():
        walk(msg.members)
    for f in d.fields.values():
        if f.type == "DATA" and f.tag not in pairs:
            before = next((g for g in d.fields.values() if g.tag == f.tag - 1), None)
            if before is not None and before.type == "LENGTH":
                pairs[f.tag] = before.tag
    return pairs


def _used_names(spec: _ClassSpec, local: Sequence[_ClassSpec]) -> set[str]:
    names: set[str] = set()
    for c in [*local, spec]:
        for slot in c.slots:
            if isinstance(slot, _GroupSlot):
                names.add(slot.entry_class)
        names.update(target for _, target in c.aliases)
    return names - {c.name for c in local}


def _dependency_order(
    specs: Sequence[_ClassSpec], classes: dict[str, _ClassSpec]
) -> list[_ClassSpec]:
    wanted = {s.name for s in specs}
    done: list[_ClassSpec] = []
    seen: set[str] = set()

    def visit(s: _ClassSpec) -> None:
        if s.name in seen:
            return
        seen.add(s.name)
        for slot in s.slots:
            if isinstance(slot, _GroupSlot) and slot.entry_class in wanted:
                visit(classes[slot.entry_class])
        done.append(s)

    for s in sorted(specs, key=lambda s: s.name):
        visit(s)
    return done


#: The packages mdfeed ships, generated from fix_spec/dictionaries.
SHIPPED = (
    PackageSpec("fix44", "FIX 4.4", "FIX44.xml"),
    PackageSpec("fix50sp2", "FIX 5.0 SP2 over FIXT 1.1", "FIX50SP2.xml", transport="FIXT11.xml"),
    PackageSpec(
        "venue44",
        "FIX 4.4 with the example venue's extensions",
        "FIX44.xml",
        extensions=("venue-extensions.xml",),
        write_merged_xml=True,
    ),
)


def generate_shipped(
    dictionaries_dir: Path, out_dir: Path, *, progress: bool = False
) -> list[Path]:
    """Generate every shipped package; with `progress`, print a line per package."""
    written: list[Path] = []
    for spec in SHIPPED:
        started = time.perf_counter()
        files = generate_package(spec, dictionaries_dir, out_dir)
        written += files
        if progress:
            messages = sum(1 for f in files if f.parent.name == "messages") - 1
            took = time.perf_counter() - started
            print(f"{spec.package}: {messages} message classes, {len(files)} files, {took:.2f} s")
    return written
