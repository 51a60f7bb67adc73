"""/ingest's `url` is read as a web address, never as a path on the bot's machine."""

from __future__ import annotations

from pathlib import Path

from tests.bot.conftest import World, reply_of


async def test_a_file_path_given_as_the_url_is_refused_not_read(
    world: World, tmp_path: Path
) -> None:
    secret = tmp_path / "notes.txt"
    secret.write_text(
        "Private notes\n\nThe spare key to the boathouse hangs behind the third oar.",
        encoding="utf-8",
    )
    ingest = await world.admin.slash(world.channel, "ingest", url=str(secret))
    summary = reply_of(ingest).content
    assert "Skipped" in summary and "only http and https URLs are fetched" in summary
    assert "Private notes" not in summary
    sources = await world.member.slash(world.channel, "sources")
    assert "Private notes" not in reply_of(sources).content
