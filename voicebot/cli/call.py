"""``voicebot call URL --play IN.wav [--record OUT.wav] [--json]``: a WebRTC test caller."""

from __future__ import annotations

import asyncio
import json
import sys

import click


@click.command()
@click.argument("url")
@click.option("--play", "play", required=True, type=click.Path(dir_okay=False), help="WAV file to speak (real time).")
@click.option("--record", "record", type=click.Path(dir_okay=False), default=None, help="Write the bot's audio here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--start-after",
    type=float,
    default=None,
    help="Seconds after connecting to start playing (default: when the greeting has ended).",
)
@click.option("--caller-token", default=None,
              help="The caller's number signed for the server (`voicebot token caller NUMBER`); else anonymous.")
@click.option("--tail", "tail_s", type=float, default=2.5, show_default=True, help="Bot silence that ends the call.")
def call(
    url: str,
    play: str,
    record: str | None,
    as_json: bool,
    start_after: float | None,
    caller_token: str | None,
    tail_s: float,
) -> None:
    """Call the bot at URL (e.g. http://127.0.0.1:8080) over WebRTC, playing IN.wav as the microphone.

    Prints the call id, the transcript the server kept and the reply latency of each turn (end of the
    caller's speech in the file to the first bot audio heard).
    """
    from loguru import logger

    from voicebot.client.webrtc import ClientError, place_call, write_wav

    logger.remove()  # pipecat's loguru output is noise for a client
    try:
        result = asyncio.run(place_call(url, play, start_after=start_after, caller_token=caller_token, tail_s=tail_s))
    except ClientError as exc:
        click.echo(f"voicebot call: {exc}", err=True)
        sys.exit(2)
    if record:
        write_wav(record, result.bot_audio)
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"call {summary['call_id']}: outcome {summary['outcome']}, hung up by {summary['hung_up_by']}")
    for turn in summary["transcript"]:
        click.echo(f"  {turn['speaker']:>6}: {turn['text']}")
    for i, turn in enumerate(summary["turns"], 1):
        lat = turn["latency_ms"]
        click.echo(f"  turn {i}: speech ended at {turn['speech_end_s']} s, reply after {lat} ms" if lat else
                   f"  turn {i}: speech ended at {turn['speech_end_s']} s, no reply heard")
