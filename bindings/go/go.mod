// SPDX-License-Identifier: MIT
module libpimoe.org/pimoe

go 1.19
