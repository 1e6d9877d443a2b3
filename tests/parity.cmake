# Parity of the library against the reference oracle (tests/oracle): router options, activations, presets, shapes,
# thread counts, determinism and statistics, at fp32.
pimoe_add_gtest(test_parity ${CMAKE_CURRENT_LIST_DIR}/test_parity.cpp)
