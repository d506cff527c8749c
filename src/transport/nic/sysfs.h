// Small sysfs readers shared by the two discovery branches (nic.cc defines them). Private to nic/.
#pragma once

#include <string>
#include <vector>

namespace xsite::transport::nic::sysfs {

std::string line(const std::string& path);               // first line, trimmed; "" if unreadable
std::string realPath(const std::string& path);           // "" if it does not resolve
std::vector<std::string> list(const std::string& path);  // entries but dot-files, sorted

}  // namespace xsite::transport::nic::sysfs
