#!/usr/bin/env python3
"""torch_save.py IN.safetensors OUT.pth

Writes a safetensors file's tensors the way Python's torch.save(state_dict) does,
without PyTorch, so the import test reads the real format rather than LibTorch's
own writer: a zip of archive/data.pkl (pickle protocol 2 of a
collections.OrderedDict whose values are torch._utils._rebuild_tensor_v2 calls
over persistent storages ('storage', torch.FloatStorage, key, 'cpu', numel)),
archive/byteorder, one archive/data/KEY record per storage, and archive/version.
"""
import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile

STORAGES = {"F32": "FloatStorage", "F64": "DoubleStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage"}
ITEM_SIZE = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2}

# Stand-ins registered under torch's module names, so pickle writes the globals torch.save writes.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils
for name in STORAGES.values():
    setattr(torch, name, type(name, (), {"__module__": "torch"}))


def _rebuild_tensor_v2(*args):
    raise RuntimeError("only pickled, never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, dtype, numel):
        self.key, self.cls, self.numel = key, getattr(torch, STORAGES[dtype]), numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce__(self):
        stride, step = [], 1
        for size in reversed(self.shape):
            stride.insert(0, step)
            step *= size
        return (_rebuild_tensor_v2, (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def main(src, dst):
    with open(src, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    state, records = collections.OrderedDict(), []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        data = blob[8 + n + begin : 8 + n + end]
        key = str(len(records))
        state[name] = Tensor(Storage(key, entry["dtype"], len(data) // ITEM_SIZE[entry["dtype"]]), entry["shape"])
        records.append((key, data))
    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(state)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in records:
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
