// Human output of wtctl: aligned tables and durations.
//
// Thread-safety: pure functions.
#ifndef WTD_CLI_FORMAT_H_
#define WTD_CLI_FORMAT_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wtd {

// Columns padded to their widest cell; the last column is not padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);
// The `runs` table from an array of run objects (run_view.h fields).
std::string FormatRuns(const nlohmann::json& runs);
// The `status` report from the daemon's status object.
std::string FormatStatus(const nlohmann::json& status);
// A JSON scalar as text: strings bare, null as "-".
std::string Cell(const nlohmann::json& v);

}  // namespace wtd

#endif  // WTD_CLI_FORMAT_H_
