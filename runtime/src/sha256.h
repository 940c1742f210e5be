// SHA-256 (FIPS 180-4), for checking a build's files against the hashes in its manifest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ddt::detail {

class Sha256 {
 public:
  /// `hardware`: use the CPU's SHA instructions (x86 SHA-NI) where it has them, else portable C++.
  explicit Sha256(bool hardware = true);
  void update(const void* data, size_t size);
  /// The digest as 64 lowercase hex digits (as Python's hashlib.sha256().hexdigest()); ends the hash.
  std::string hexdigest();

 private:
  void block(const unsigned char* p);             // portable compression of one block
  void blocks(const unsigned char* p, size_t n);  // n whole 64-byte blocks
  bool hardware_;
  uint32_t h_[8];
  unsigned char buf_[64];
  size_t used_ = 0;
  uint64_t length_ = 0;  // bytes hashed so far
};

/// Whether this CPU has the SHA instructions Sha256 uses when allowed to.
bool sha256_hardware();

/// sha256 of a whole file, hex; throws ddt::Error if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace ddt::detail
