"""A room's conversation log: every command A2E accepted (ask, each piece of a speak), every final
reply, cancels (flush), with time, kind, utterance id and which client sent it.

Recorded from hooks (the relay's ``on_sent``/``on_flushed``, the room's event listeners), written in
the background by the :class:`~bridge.rooms.writer.SerialWriter` in order, kept in the room store
(so it survives restarts) and purged with the room.
"""

from __future__ import annotations

from datetime import datetime, timezone

from bridge import frames

from .journal import EntryKind, TranscriptEntry
from .registry import Clock, LiveRoom
from .relay import Command
from .store import RoomStore
from .writer import SerialWriter


class Transcripts:
    def __init__(self, store: RoomStore, writer: SerialWriter, *, clock: Clock, batch_seconds: float = 0.0) -> None:
        self.store = store
        self.writer = writer
        self.clock = clock
        self.batch_seconds = batch_seconds  # BRIDGE_TRANSCRIPT_BATCH_SECONDS
        self._pending: list[TranscriptEntry] = []  # recorded, in the writer's queue, not yet written

    # -- hooks --------------------------------------------------------------------------------
    def watch(self, lr: LiveRoom) -> None:
        """Record a room's final replies (a hook of the room lifecycle: an open or resumed room)."""
        lr.events.listeners.append(lambda frame: self._frame(lr, frame))

    def sent(self, lr: LiveRoom, command: Command) -> None:
        """A command A2E accepted (a hook of the relay)."""
        split = command.parts > 1
        self.record(lr, command.kind, command.text, origin=command.origin, position=command.seq,
                    utterance_id=getattr(command, "utterance_id", None),
                    part=command.part if split else None, parts=command.parts if split else None)

    def flushed(self, lr: LiveRoom, count: int, origin: str | None) -> None:
        """Pending commands dropped (a hook of the relay)."""
        self.record(lr, "cancel", "", origin=origin, count=count)

    def _frame(self, lr: LiveRoom, frame: frames.ServerFrame) -> None:
        if isinstance(frame, frames.Reply) and frame.final:
            self.record(lr, "reply", frame.text, reply_id=frame.reply_id, source=frame.source)

    def record(self, lr: LiveRoom, kind: EntryKind, text: str, **fields: object) -> None:
        """Write an entry down, in the background (brains and cancels by utterance record theirs here).

        Entries recorded while a write waits its turn join it: one store transaction (one fsync)
        for all of them, not one per command, which cost more CPU than the rest of a speak. The write
        waits up to ``batch_seconds`` for others to join (a crash may lose that much of the log;
        anything written through the writer after it, a room's close included, still comes after it)."""
        entry = TranscriptEntry(room_id=lr.room.id, kind=kind, text=text, at=self.clock(), **fields)  # type: ignore[arg-type]
        self._pending.append(entry)
        if len(self._pending) == 1:
            self.writer.submit(self._write_pending, within=self.batch_seconds)

    async def _write_pending(self) -> None:
        entries, self._pending = self._pending, []
        await self.store.add_transcript(entries)

    # -- reading ------------------------------------------------------------------------------
    async def read(self, room_id: str, *, after: int = 0, limit: int = 1000) -> list[TranscriptEntry]:
        await self.writer.flush()  # everything recorded before this call
        return await self.store.transcript(room_id, after=after, limit=limit)

    async def count(self, room_id: str) -> int:
        total, after = 0, 0
        while batch := await self.read(room_id, after=after, limit=1000):
            total, after = total + len(batch), batch[-1].id
        return total

    async def erase(self, room_id: str) -> int:
        await self.writer.flush()
        return await self.store.delete_transcript(room_id)


def as_text(entries: list[TranscriptEntry]) -> str:
    """A plain transcript, one line per utterance: the pieces of a speak are joined again."""
    lines: list[str] = []
    speeches: dict[tuple[str | None, int], int] = {}  # (origin, first piece's position) -> its line
    for entry in entries:
        if entry.kind == "speak" and entry.part is not None and entry.position is not None:
            first = (entry.origin, entry.position - entry.part + 1)
            if entry.part > 1 and first in speeches:
                lines[speeches[first]] += " " + entry.text
                continue
            speeches[first] = len(lines)
        when = datetime.fromtimestamp(entry.at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        who = f" ({entry.origin})" if entry.origin else ""
        text = f"dropped {entry.count} pending command(s)" if entry.kind == "cancel" else entry.text
        lines.append(f"[{when}] {entry.kind}{who}: {text}")
    return "".join(line + "\n" for line in lines)
