# Turn a .lua file into a C header holding it as a string constant (run with cmake -P).
# -DINPUT=file.lua -DOUTPUT=file.h -DNAME=symbol [-DPRELUDE=shared.lua, put in front of it]
file(READ "${INPUT}" content HEX)
if(PRELUDE)
    file(READ "${PRELUDE}" prelude HEX)
    set(content "${prelude}${content}")
endif()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE "${OUTPUT}" "/* generated from ${INPUT}: edit the .lua file */\n"
     "static const char ${NAME}[] = {${bytes} 0x00};\n")
