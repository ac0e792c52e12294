// Reading a torch.save file (the zip format of PyTorch 1.6 and later) that
// holds a dict of tensors, as RWKV-LM's checkpoints do, without Python.
//
// LibTorch 1.13's own unpickler turns Python's collections.OrderedDict (what
// state_dict() returns and torch.save pickles) into None, so it cannot read
// these files. This reader interprets the pickle itself, restricted to what
// torch.save writes for a dict of tensors (pickle protocol 2: dicts, tuples,
// strings, numbers, torch._utils._rebuild_tensor_v2 over persistent storages),
// and takes each storage's bytes from the zip's data/KEY record through
// LibTorch's PyTorchStreamReader. Every value read is checked: an unknown
// opcode or object, a storage whose record is missing or of another size, a
// view reaching past its storage, are each one cdrmix::Error naming the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace cdrmix {

std::map<std::string, at::Tensor> read_torch_save(const std::string &path);

} // namespace cdrmix
