// The build folder's lock, shared with the Python side (ddt_export/files.py: lock_path, locked).
#pragma once

#include <filesystem>

namespace ddt::detail {

/// `<parent>/.<name>.lock` beside a build folder (beside, not inside: a rebuild replaces the
/// folder), the path ddt_export/files.py::lock_path gives for the same argument: the real folder
/// (symlinks resolved where the path exists, ".." and "." normalised), so a build opened through a
/// link locks the same file. Empty for the filesystem root or a path that cannot be resolved.
std::filesystem::path lock_path(const std::filesystem::path& folder);

/// Holds a build folder's lock shared (flock LOCK_SH) while alive, as files.py's
/// `locked(folder, shared=True)`: writers hold it exclusively only while they swap a rebuilt
/// folder into place or rewrite the manifest (milliseconds), so this blocks at most that long and
/// a reader never sees a half-swapped folder. Creates nothing: with no lock file (no writer has
/// ever touched the folder), or one that cannot be opened or locked, the folder is read without
/// it, as Python's readers do.
class SharedBuildLock {
 public:
  explicit SharedBuildLock(const std::filesystem::path& folder);
  ~SharedBuildLock();
  SharedBuildLock(const SharedBuildLock&) = delete;
  SharedBuildLock& operator=(const SharedBuildLock&) = delete;

  /// Whether the lock is held (false: read without it).
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace ddt::detail
