/* SPDX-License-Identifier: MIT */
/** \file
 * Symbol visibility for libpimoe's public API. */
#ifndef PIMOE_EXPORT_H
#define PIMOE_EXPORT_H

#if defined(SWIG)
#define PIMOE_API
#elif defined(PIMOE_STATIC_DEFINE)
#define PIMOE_API
#elif defined(_WIN32)
#ifdef PIMOE_BUILDING_LIBRARY
#define PIMOE_API __declspec(dllexport)
#else
#define PIMOE_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define PIMOE_API __attribute__((visibility("default")))
#else
#define PIMOE_API
#endif

#endif /* PIMOE_EXPORT_H */
