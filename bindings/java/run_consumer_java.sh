#!/bin/sh
# SPDX-License-Identifier: MIT
# Installed-package test of the Java binding (ctest java_consumer_installed; runnable by hand):
#   run_consumer_java.sh BUILD_DIR SOURCE_DIR CMAKE JAVAC JAVA [MVN]
# 1. cmake --install BUILD_DIR into a fresh prefix BUILD_DIR/java-consumer/prefix; checks the jar and libraries.
# 2. Compiles examples/java/PimoeExample.java against PREFIX/share/java/pimoe.jar only.
# 3. Runs it with -Djava.library.path=PREFIX/lib (jar extraction off), then with LD_LIBRARY_PATH=PREFIX/lib alone,
#    and checks each time (LD_DEBUG) that the JNI library and libpimoe were loaded from the prefix.
# 4. With MVN (and Debian's Maven plugins in /usr/share/maven-repo): the README's Maven commands, offline:
#    `mvn install:install-file` of BUILD_DIR/bindings/java/maven/ (jar, pom, javadoc jar) into a fresh local
#    repository, then examples/java/pom.xml built and run (`mvn package exec:java`) against it, its natives coming
#    out of the jar; every repository is mirrored by file:///usr/share/maven-repo (maven-settings.xml).
set -eu
[ $# -eq 5 ] || [ $# -eq 6 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR CMAKE JAVAC JAVA [MVN]" >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd -P)
SOURCE_DIR=$(cd "$2" && pwd -P)
CMAKE=$3
JAVAC=$4
JAVA=$5
MVN=${6:-}
WORK=$BUILD_DIR/java-consumer
PREFIX=$WORK/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK/classes"
echo "==== install into $PREFIX"
"$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "install"; }
JAR=$PREFIX/share/java/pimoe.jar
[ -f "$JAR" ] || fail "no $JAR"
JNI=$(find "$PREFIX" -name libpimoe_java.so | head -n 1)
[ -n "$JNI" ] || fail "no libpimoe_java.so under $PREFIX"
LIBDIR=$(dirname "$JNI")
[ -e "$LIBDIR/libpimoe.so.0" ] || fail "libpimoe.so.0 is not beside libpimoe_java.so in $LIBDIR"
echo "jar: $JAR"
echo "JNI library: $JNI"

echo "==== compile examples/java/PimoeExample.java against the installed jar"
"$JAVAC" -Xlint:all -Werror -cp "$JAR" -d "$WORK/classes" "$SOURCE_DIR/examples/java/PimoeExample.java"

check_loaded() {  # log-file: the loader must have opened both libraries from the prefix
  for lib in libpimoe_java.so libpimoe.so.0; do
    grep -q "file=$LIBDIR/$lib .*generating link map\|calling init: $LIBDIR/$lib" "$1" ||
      { grep "libpimoe" "$1" | head -n 20 >&2; fail "$lib was not loaded from $LIBDIR"; }
  done
}

echo "==== run with -Djava.library.path=$LIBDIR"
LD_DEBUG=files LD_DEBUG_OUTPUT=$WORK/ld1 "$JAVA" -Dpimoe.native.extract=false -Djava.library.path="$LIBDIR" \
  -cp "$WORK/classes:$JAR" PimoeExample >"$WORK/run1.log" 2>&1 || { cat "$WORK/run1.log"; fail "run 1"; }
cat "$WORK/run1.log"
grep -q "java example OK" "$WORK/run1.log" || fail "run 1 did not finish"
cat "$WORK"/ld1.* >"$WORK/ld1.log"
check_loaded "$WORK/ld1.log"

echo "==== run with LD_LIBRARY_PATH=$LIBDIR only"
LD_LIBRARY_PATH=$LIBDIR LD_DEBUG=files LD_DEBUG_OUTPUT=$WORK/ld2 "$JAVA" -Dpimoe.native.extract=false \
  -cp "$WORK/classes:$JAR" PimoeExample >"$WORK/run2.log" 2>&1 || { cat "$WORK/run2.log"; fail "run 2"; }
grep -q "java example OK" "$WORK/run2.log" || fail "run 2 did not finish"
cat "$WORK"/ld2.* >"$WORK/ld2.log"
check_loaded "$WORK/ld2.log"

if [ -n "$MVN" ]; then
  VERSION=$(sed -nE 's|^  <version>([0-9.]+)</version>$|\1|p' "$BUILD_DIR"/bindings/java/maven/*.pom)
  ART=$BUILD_DIR/bindings/java/maven/pimoe-$VERSION
  for f in "$ART.jar" "$ART.pom" "$ART-javadoc.jar"; do [ -f "$f" ] || fail "no Maven artifact $f"; done
  grep -q "<version>$VERSION</version>" "$SOURCE_DIR/examples/java/pom.xml" ||
    fail "examples/java/pom.xml does not depend on org.pimoe:pimoe:$VERSION (this build's version)"
  SETTINGS=$SOURCE_DIR/bindings/java/maven-settings.xml
  REPO=$WORK/m2
  echo "==== mvn install:install-file org.pimoe:pimoe:$VERSION into $REPO (offline)"
  "$MVN" -B -q -s "$SETTINGS" -Dmaven.repo.local="$REPO" install:install-file \
    -Dfile="$ART.jar" -DpomFile="$ART.pom" -Djavadoc="$ART-javadoc.jar" >"$WORK/mvn-install.log" 2>&1 ||
    { cat "$WORK/mvn-install.log"; fail "mvn install:install-file"; }
  for f in pimoe-$VERSION.jar pimoe-$VERSION.pom pimoe-$VERSION-javadoc.jar; do
    [ -f "$REPO/org/pimoe/pimoe/$VERSION/$f" ] || fail "$f is not in the local repository"
  done
  echo "==== mvn package exec:java of examples/java/pom.xml"
  mkdir -p "$WORK/maven-app"
  cp "$SOURCE_DIR/examples/java/pom.xml" "$SOURCE_DIR/examples/java/PimoeExample.java" "$WORK/maven-app/"
  (cd "$WORK/maven-app" && "$MVN" -B -q -s "$SETTINGS" -Dmaven.repo.local="$REPO" package exec:java) \
    >"$WORK/mvn-app.log" 2>&1 || { cat "$WORK/mvn-app.log"; fail "mvn package exec:java"; }
  cat "$WORK/mvn-app.log"
  grep -q "natives: jar:" "$WORK/mvn-app.log" || fail "the Maven build did not load the natives bundled in the jar"
  grep -q "java example OK" "$WORK/mvn-app.log" || fail "the Maven build's example did not finish"
fi
echo "==== java consumer OK"
