// The build folder's lock: `<parent>/.<name>.lock`, flock'ed shared by readers, exclusively by
// writers (ddt_export/files.py). Closing the descriptor releases the lock.

#include "build_lock.h"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace ddt::detail {

namespace fs = std::filesystem;

fs::path lock_path(const fs::path& folder) {
  // pathlib's Path(folder).resolve(): symlinks resolved where the path exists, the rest normalised
  // lexically ("a/../b" is "b"), so a build opened through a link takes the lock of its real folder.
  std::error_code ec;
  const fs::path absolute = fs::absolute(folder, ec);
  if (ec) return {};
  fs::path real = fs::weakly_canonical(absolute, ec);
  if (ec) return {};  // a symlink loop, or a name too long: there is no folder to lock
  if (!real.has_filename()) real = real.parent_path();  // "x/." normalises to "x/"
  if (!real.has_filename() || real == real.root_path()) return {};
  return real.parent_path() / ("." + real.filename().string() + ".lock");
}

#if defined(__unix__) || defined(__APPLE__)

SharedBuildLock::SharedBuildLock(const fs::path& folder) {
  const fs::path path = lock_path(folder);
  if (path.empty()) return;
  // O_RDONLY: a reader never creates the lock file, and flock needs no write access;
  // O_NONBLOCK: opening a FIFO someone put there must not hang (it is then not a lock file).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return;  // no lock file (or unreadable): read without it
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return;
  }
  int rc;
  do {
    rc = ::flock(fd, LOCK_SH);  // blocks while a writer swaps the folder or rewrites the manifest
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {  // a filesystem without flock: read without it
    ::close(fd);
    return;
  }
  fd_ = fd;
}

SharedBuildLock::~SharedBuildLock() {
  if (fd_ >= 0) ::close(fd_);
}

#else

SharedBuildLock::SharedBuildLock(const fs::path&) {}
SharedBuildLock::~SharedBuildLock() = default;

#endif

}  // namespace ddt::detail
