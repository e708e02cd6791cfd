// CRC-32C (Castagnoli), used to seal every encoded record so that any
// damaged byte is detected before decoding.
#ifndef WTD_BASE_CRC32C_H_
#define WTD_BASE_CRC32C_H_

#include <cstdint>
#include <string_view>

namespace wtd {

uint32_t Crc32c(std::string_view data, uint32_t init = 0);

}  // namespace wtd

#endif  // WTD_BASE_CRC32C_H_
