// Checkpoints: named tensors + string metadata in a safetensors file (PyTorch's
// safetensors.torch.load_file reads it), written atomically.
//
// Names follow PyTorch's state_dict (SPEC section 2); pruning masks are uint8 tensors named
// "<param>.mask"; optimizer state is "optim.<param>.momentum_buffer". BN's
// num_batches_tracked (int32 in memory) is stored as int64, as PyTorch keeps it.
// Metadata keys: docs/design.md ("Checkpoints").
#pragma once

#include <map>
#include <string>

#include "framework/nn.h"
#include "framework/safetensors.h"

namespace lethe {

/// Writes `tensors` (any devices; copied to the host) and `metadata` to `path` atomically:
/// an existing file there is replaced only when the new one is complete.
void save_checkpoint(const std::string& path, const nn::NamedTensors& tensors,
                     const io::StMetadata& metadata);

struct Checkpoint {
  io::StMetadata metadata;
  std::map<std::string, Tensor> tensors;  ///< CPU tensors, by name
};

/// Reads a checkpoint; every tensor becomes a CPU tensor of lethe's dtypes.
Checkpoint read_checkpoint(const std::string& path);

/// Loads a module's state_dict from a checkpoint. Every metadata key in `expect` must have the
/// same value in the file (architecture, width, classes, ...), and every parameter and buffer
/// of the module must be present with the same shape; otherwise an Error names the file and
/// the first mismatch, and the module is left unchanged. Returns the checkpoint (for masks,
/// optimizer state and the rest of its metadata).
Checkpoint load_checkpoint(const std::string& path, nn::Module& module,
                           const io::StMetadata& expect = {});

}  // namespace lethe
