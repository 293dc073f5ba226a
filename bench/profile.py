"""Summarise a py-spy raw profile (collapsed stacks, recorded with --threads).

    .venv/bin/python -m bench.profile FILE [--top N] [--thread NAME] [--grep TEXT]

Prints the samples per thread, then the functions with the most samples, self (the frame
on top of the stack) and inclusive (anywhere on it), so a hot path shows with its cost.
Frames are shortened to ``function (module)``; lines are dropped so one function is one row.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    function, path = match.groups()
    module = path.split("site-packages/")[-1].replace("/", ".").removesuffix(".py")
    return f"{function} ({module})"


def thread_group(head: str) -> str:
    """``thread (123): roost-writer`` -> ``roost-writer``; numbered pool threads grouped."""
    name = head.split(":", 1)[-1].strip() or head
    return re.sub(r"[-_ ]?\d+$", "", name) or name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default=None, help="only threads whose name contains this")
    parser.add_argument("--grep", default=None, help="only stacks containing this text")
    args = parser.parse_args()
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in Path(args.file).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, *frames = stack.split(";")
        group = thread_group(head)
        if args.thread and args.thread not in group:
            continue
        if args.grep and args.grep not in stack:
            continue
        threads[group] += count
        total += count
        names = [frame_name(f) for f in frames]
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    print(f"{total} samples")
    print("\nper thread:")
    for name, n in threads.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\ntop {args.top} {title}:")
        for name, n in counter.most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
