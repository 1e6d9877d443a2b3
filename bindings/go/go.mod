module libpimoe.org/pimoe

go 1.19
