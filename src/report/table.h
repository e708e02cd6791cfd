// Human output shared by the commands: aligned tables and JSON cells.
//
// Thread-safety: pure functions.
#ifndef WTD_REPORT_TABLE_H_
#define WTD_REPORT_TABLE_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace wtd {

// Columns padded to their widest cell; the last column is not padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);
// A JSON scalar as text: strings bare, null as "-", booleans yes/no.
std::string Cell(const nlohmann::json& v);

}  // namespace wtd

#endif  // WTD_REPORT_TABLE_H_
