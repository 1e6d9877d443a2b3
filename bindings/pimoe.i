// SPDX-License-Identifier: MIT
/* The one SWIG interface of libpimoe: it wraps the public C header only (never the C++ core). The parts that must
 * differ per language live in <language>/pimoe_<language>.i, included here (GDAL's layout). */
%module pimoe

%{
#include <pimoe/pimoe.h>
%}

/* Not bound yet in any language (each binding's idiomatic layer would expose it as Model.prune): pruning. */
%ignore pimoe_prune;
%ignore pimoe_prune_report;
%ignore pimoe_prune_method;

#if defined(SWIGJAVA)
%include "java/pimoe_java.i"
#elif defined(SWIGCSHARP)
%include "csharp/pimoe_csharp.i"
#elif defined(SWIGGO)
%include "go/pimoe_go.i"
#elif defined(SWIGPYTHON) /* swig -python -threads -module cpimoe: bindings/python/setup.py */
%include "python/pimoe_python.i"
#endif
