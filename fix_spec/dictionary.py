"""FIX data dictionaries in QuickFIX's XML format, read into a typed model.

A dictionary is one file (``FIX44.xml``), a transport and an application file together
(``FIXT11.xml`` with ``FIX50SP2.xml``: the header, trailer and session messages come from
the transport), and any number of *extensions* on top: files in the same format that hold
only what a venue adds. An extension's fields are new fields (a tag or a name already used
differently is an error); its components, messages, header and trailer either add new
ones or, when the name (or the MsgType) exists, append their members to the existing one,
and a group inside them appends members to the group of the same name. That is how a
venue's dictionary reads: "FIX 4.4, plus RptSeq(83) on MarketDataIncrementalRefresh
entries, plus these custom fields".

`to_quickfix_xml` writes the merged result as one QuickFIX dictionary, so the FIX engine
and the generated codec read exactly the same definitions.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


class DictionaryError(Exception):
    """A dictionary file is malformed or contradicts itself; the message says where."""


@dataclass(frozen=True, slots=True)
class EnumValue:
    value: str
    description: str


@dataclass(frozen=True, slots=True)
class FieldDef:
    tag: int
    name: str
    type: str
    values: tuple[EnumValue, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    required: bool


@dataclass(frozen=True, slots=True)
class ComponentRef:
    name: str
    required: bool


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A repeating group; `name` is its NumInGroup count field (``NoMDEntries``)."""

    name: str
    required: bool
    members: tuple[Member, ...]


Member = FieldRef | ComponentRef | GroupDef


@dataclass(frozen=True, slots=True)
class ComponentDef:
    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class MessageDef:
    name: str
    msg_type: str
    category: str  # "admin" or "app"
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Dictionary:
    """A whole FIX dictionary: version, fields by name, components, messages by MsgType."""

    begin_string: str
    major: int
    minor: int
    service_pack: int
    fields: dict[str, FieldDef]
    components: dict[str, ComponentDef]
    messages: dict[str, MessageDef]
    header: tuple[Member, ...]
    trailer: tuple[Member, ...]
    sources: tuple[str, ...] = field(default=())

    def field(self, name: str) -> FieldDef:
        try:
            return self.fields[name]
        except KeyError:
            raise DictionaryError(f"field {name} is used but not defined") from None


def _bool(value: str | None) -> bool:
    return (value or "N").upper() == "Y"


def _members(element: ET.Element, where: str) -> tuple[Member, ...]:
    members: list[Member] = []
    for child in element:
        name = child.get("name")
        if name is None:
            raise DictionaryError(f"{where}: <{child.tag}> without a name")
        required = _bool(child.get("required"))
        if child.tag == "field":
            members.append(FieldRef(name, required))
        elif child.tag == "component":
            members.append(ComponentRef(name, required))
        elif child.tag == "group":
            members.append(GroupDef(name, required, _members(child, f"{where}/{name}")))
        else:
            raise DictionaryError(f"{where}: unexpected <{child.tag}>")
    return tuple(members)


@dataclass(slots=True)
class _Parsed:
    root: ET.Element
    path: str
    fields: list[FieldDef]
    components: list[ComponentDef]
    messages: list[MessageDef]
    header: tuple[Member, ...] | None
    trailer: tuple[Member, ...] | None


def _parse(path: Path) -> _Parsed:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DictionaryError(f"{path}: not well-formed XML: {exc}") from None
    except OSError as exc:
        raise DictionaryError(f"{path}: cannot read: {exc.strerror}") from None
    if root.tag != "fix":
        raise DictionaryError(f"{path}: root element is <{root.tag}>, expected <fix>")
    where = path.name
    fields: list[FieldDef] = []
    for el in root.iterfind("fields/field"):
        number, name, ftype = el.get("number"), el.get("name"), el.get("type")
        if not (number and name and ftype) or not number.isdigit():
            raise DictionaryError(f"{where}: field needs number, name and type: {el.attrib}")
        values = tuple(
            EnumValue(v.get("enum", ""), v.get("description", "")) for v in el.iter("value")
        )
        fields.append(FieldDef(int(number), name, ftype.upper(), values))
    components = [
        ComponentDef(el.get("name", ""), _members(el, f"{where}/{el.get('name')}"))
        for el in root.iterfind("components/component")
    ]
    messages = []
    for el in root.iterfind("messages/message"):
        name, msg_type = el.get("name"), el.get("msgtype")
        if not name or not msg_type:
            raise DictionaryError(f"{where}: message needs name and msgtype: {el.attrib}")
        messages.append(
            MessageDef(name, msg_type, el.get("msgcat", "app"), _members(el, f"{where}/{name}"))
        )
    header_el, trailer_el = root.find("header"), root.find("trailer")
    return _Parsed(
        root=root,
        path=str(path),
        fields=fields,
        components=components,
        messages=messages,
        header=_members(header_el, f"{where}/header") if header_el is not None else None,
        trailer=_members(trailer_el, f"{where}/trailer") if trailer_el is not None else None,
    )


def _merge_members(base: tuple[Member, ...], extra: tuple[Member, ...]) -> tuple[Member, ...]:
    """Append `extra` to `base`; a group already in `base` gets the extra group's members."""
    merged = list(base)
    for member in extra:
        index = next((i for i, m in enumerate(merged) if m.name == member.name), None)
        if index is None:
            merged.append(member)
            continue
        existing = merged[index]
        if isinstance(existing, GroupDef) and isinstance(member, GroupDef):
            merged[index] = replace(
                existing, members=_merge_members(existing.members, member.members)
            )
        elif type(existing) is not type(member):
            raise DictionaryError(f"{member.name} is already defined as another kind of member")
    return tuple(merged)


def load_dictionary(
    path: Path, *, transport: Path | None = None, extensions: Sequence[Path] = ()
) -> Dictionary:
    """Read a dictionary, with its transport dictionary (FIXT) and extensions, merged."""
    main = _parse(path)
    version = main.root
    major, minor = int(version.get("major", "0")), int(version.get("minor", "0"))
    service_pack = int(version.get("servicepack", "0") or 0)
    kind = version.get("type", "FIX")
    parts = [main]
    if transport is not None:
        parts.insert(0, _parse(transport))
        begin_string = "FIXT.1.1"
    else:
        begin_string = f"{kind}.{major}.{minor}"

    fields: dict[str, FieldDef] = {}
    by_tag: dict[int, FieldDef] = {}
    components: dict[str, ComponentDef] = {}
    messages: dict[str, MessageDef] = {}
    header: tuple[Member, ...] = ()
    trailer: tuple[Member, ...] = ()

    def add_fields(part: _Parsed) -> None:
        # A later file may redefine a field with the same tag and name (a venue adding enum
        # values, FIX 5 revising FIXT's); a tag or a name used for another field is an error.
        for f in part.fields:
            known = fields.get(f.name) or by_tag.get(f.tag)
            if known is not None and (known.tag != f.tag or known.name != f.name):
                raise DictionaryError(
                    f"{part.path}: field {f.name}({f.tag}) conflicts with {known.name}({known.tag})"
                )
            fields[f.name] = f
            by_tag[f.tag] = f

    for part in parts:
        add_fields(part)
        components.update((c.name, c) for c in part.components)
        messages.update((m.msg_type, m) for m in part.messages)
        if part.header is not None and not header:
            header = part.header
        if part.trailer is not None and not trailer:
            trailer = part.trailer

    sources = [p.path for p in parts]
    for ext_path in extensions:
        ext = _parse(ext_path)
        sources.append(ext.path)
        add_fields(ext)
        for c in ext.components:
            base = components.get(c.name)
            components[c.name] = (
                c
                if base is None
                else replace(base, members=_merge_members(base.members, c.members))
            )
        for m in ext.messages:
            base_msg = messages.get(m.msg_type)
            messages[m.msg_type] = (
                m
                if base_msg is None
                else replace(base_msg, members=_merge_members(base_msg.members, m.members))
            )
        if ext.header:
            header = _merge_members(header, ext.header)
        if ext.trailer:
            trailer = _merge_members(trailer, ext.trailer)

    dictionary = Dictionary(
        begin_string=begin_string,
        major=major,
        minor=minor,
        service_pack=service_pack,
        fields=fields,
        components=components,
        messages=messages,
        header=header,
        trailer=trailer,
        sources=tuple(sources),
    )
    _check_references(dictionary)
    return dictionary


def _check_references(d: Dictionary) -> None:
    def walk(members: Iterable[Member], where: str) -> None:
        for m in members:
            if isinstance(m, FieldRef):
                if m.name not in d.fields:
                    raise DictionaryError(f"{where}: field {m.name} is not defined")
            elif isinstance(m, ComponentRef):
                if m.name not in d.components:
                    raise DictionaryError(f"{where}: component {m.name} is not defined")
            else:
                count = d.fields.get(m.name)
                if count is None:
                    raise DictionaryError(f"{where}: group count field {m.name} is not defined")
                walk(m.members, f"{where}/{m.name}")

    walk(d.header, "header")
    walk(d.trailer, "trailer")
    for c in d.components.values():
        walk(c.members, f"component {c.name}")
    for msg in d.messages.values():
        walk(msg.members, f"message {msg.name}")


def to_quickfix_xml(d: Dictionary) -> str:
    """The merged dictionary as one QuickFIX XML document (what QuickFIX's DataDictionary reads)."""
    kind, _, _ = d.begin_string.partition(".")
    root = ET.Element(
        "fix",
        type=kind,
        major=str(d.major),
        minor=str(d.minor),
        servicepack=str(d.service_pack),
    )

    def members(parent: ET.Element, items: Iterable[Member]) -> None:
        for m in items:
            required = "Y" if m.required else "N"
            if isinstance(m, GroupDef):
                members(ET.SubElement(parent, "group", name=m.name, required=required), m.members)
            else:
                tag = "field" if isinstance(m, FieldRef) else "component"
                ET.SubElement(parent, tag, name=m.name, required=required)

    members(ET.SubElement(root, "header"), d.header)
    msgs = ET.SubElement(root, "messages")
    for msg in d.messages.values():
        el = ET.SubElement(
            msgs, "message", name=msg.name, msgtype=msg.msg_type, msgcat=msg.category
        )
        members(el, msg.members)
    members(ET.SubElement(root, "trailer"), d.trailer)
    comps = ET.SubElement(root, "components")
    for comp in d.components.values():
        members(ET.SubElement(comps, "component", name=comp.name), comp.members)
    flds = ET.SubElement(root, "fields")
    for f in sorted(d.fields.values(), key=lambda f: f.tag):
        fel = ET.SubElement(flds, "field", number=str(f.tag), name=f.name, type=f.type)
        for v in f.values:
            ET.SubElement(fel, "value", enum=v.value, description=v.description)
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="unicode") + "\n"
