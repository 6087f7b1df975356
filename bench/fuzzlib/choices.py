"""Byte-driven choices: one byte string that hypothesis draws decides a whole generated input.

Drawing every small decision from hypothesis costs ~20 us each, ~30 ms for one manifest mutation, too much
for 100,000 inputs; one `st.binary()` draw read by `Choices` (or by `ByteRandom`, for code written against
`random.Random`) costs one draw, and hypothesis still generates, mutates and replays those bytes.
Past the end of the bytes every `Choices` choice is 0, the smallest option, so recursive generation
terminates; a `ByteRandom` goes on with a generator seeded by the bytes instead (the mutators' later draws
must not all be 0: "cut the file at 0 bytes" would be every case).
"""

from __future__ import annotations

import random


class Choices:
    """Reads the choices of one generated input from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1] if self.at <= len(self.data) else 0

    def below(self, n: int) -> int:
        """0 <= value < n."""
        if n <= 256:
            return self.byte() % n
        return (self.byte() << 8 | self.byte()) % n

    def pick(self, options: list[str]) -> str:
        return options[self.below(len(options))]

    def digits(self, alphabet: str = "0123456789") -> str:
        return "".join(alphabet[self.below(len(alphabet))] for _ in range(1 + self.below(4)))


class ByteRandom(random.Random):
    """A `random.Random` whose every draw comes from a byte string (choice, randint, shuffle... all go
    through `random()` and `getrandbits()`)."""

    def __init__(self, data: bytes) -> None:
        self._choices = Choices(data)
        self._after = random.Random(data)  # deterministic: the same bytes, the same input
        super().__init__(0)

    def _byte(self) -> int:
        if self._choices.at < len(self._choices.data):
            return self._choices.byte()
        return self._after.getrandbits(8)

    def random(self) -> float:
        value = 0
        for _ in range(7):
            value = value << 8 | self._byte()
        return (value >> 3) / float(1 << 53)

    def getrandbits(self, k: int) -> int:
        value = 0
        for _ in range((k + 7) // 8):
            value = value << 8 | self._byte()
        return value & ((1 << k) - 1)
