// SPDX-License-Identifier: MIT
/* The public C headers that every binding wraps, in the order of <pimoe/pimoe.h> (SWIG does not follow #include,
 * so each is named here). Included by <language>/pimoe_<language>.i after its renames and %ignores. A new public
 * header goes here too, at its place in pimoe.h's list. */
%include <pimoe/pimoe_export.h>
%include <pimoe/pimoe.h>
%include <pimoe/pimoe_status.h>
%include <pimoe/pimoe_options.h>
%include <pimoe/pimoe_model.h>
%include <pimoe/pimoe_stats.h>
%include <pimoe/pimoe_tensors.h>
%include <pimoe/pimoe_backends.h>
