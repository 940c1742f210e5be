// Checks, before any work and without touching the disk, that a file can be written at a path:
// not a folder, in an existing real folder (not /proc or /sys, not read-only) that is writable.

#ifdef __linux__
#include <sys/statfs.h>
#endif
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ddt/runtime.h"

namespace fs = std::filesystem;

namespace ddt {

void check_output_path(const std::string& path) {
  if (path.empty()) throw Error("give a file path to write, e.g. latents.npy");
  const fs::path p(path);
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (fs::is_directory(st)) {
    throw Error("cannot write " + path + ": it is a folder; give a file path such as " +
                (fs::path(path) / "latents.npy").string());
  }
  if (!p.has_filename()) {
    throw Error("cannot write " + path + ": it names a folder (it ends in /); give a file path such as " +
                (fs::path(path) / "latents.npy").string());
  }
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    throw Error("cannot write " + path + ": it exists and is not a regular file; give another path");
  }
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const fs::file_status pst = fs::status(parent, ec);
  if (!fs::exists(pst)) {
    // a component of the folder path may be a file (ENOTDIR), or the folder is simply missing
    fs::path up = parent;
    while (up.has_parent_path() && up != up.parent_path() && !fs::exists(fs::status(up, ec))) up = up.parent_path();
    if (fs::exists(fs::status(up, ec)) && !fs::is_directory(fs::status(up, ec))) {
      throw Error("cannot write " + path + ": " + up.string() + " is a file, not a folder");
    }
    throw Error("cannot write " + path + ": folder " + parent.string() + " does not exist; create it first");
  }
  if (!fs::is_directory(pst)) throw Error("cannot write " + path + ": " + parent.string() + " is a file, not a folder");
#ifdef __linux__  // the virtual filesystems' magic numbers (linux/magic.h)
  struct statfs sfs {};
  if (::statfs(parent.c_str(), &sfs) == 0) {
    constexpr long kProc = 0x9fa0, kSys = 0x62656572, kCgroup = 0x27e0eb, kCgroup2 = 0x63677270, kDevpts = 0x1cd1;
    const long type = static_cast<long>(sfs.f_type);
    if (type == kProc || type == kSys || type == kCgroup || type == kCgroup2 || type == kDevpts) {
      throw Error("cannot write " + path + ": " + parent.string() +
                " is on a virtual filesystem (/proc, /sys); write the file somewhere else");
    }
  }
#endif
  struct statvfs vfs {};
  if (::statvfs(parent.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) {
    throw Error("cannot write " + path + ": " + parent.string() + " is on a read-only filesystem");
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    throw Error("cannot write " + path + ": folder " + parent.string() + " is not writable (" + std::strerror(errno) + ")");
  }
}

}  // namespace ddt
