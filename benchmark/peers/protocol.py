"""What every peer script shares: the JSON-lines reply (see ../peer.mjs) and the
16-bit mono 16 kHz WAV reader the Whisper benchmark's inputs are written in."""

import json
import sys
import wave


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_wav(path):
    import numpy as np

    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != 16000:
            raise ValueError(f"{path}: need 16-bit mono 16 kHz PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0
