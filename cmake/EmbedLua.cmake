# datamart_embed_lua(VAR name...): generate <name>_lua.h from scripts/<name>.lua of the current
# source dir (a C string constant named <name>_lua) and list the headers in VAR. A script whose
# first line is "-- prelude: other.lua" gets scripts/other.lua in front of it (shared functions).
function(datamart_embed_lua var)
    set(headers)
    foreach(script ${ARGN})
        set(in ${CMAKE_CURRENT_SOURCE_DIR}/scripts/${script}.lua)
        set(out ${CMAKE_CURRENT_BINARY_DIR}/generated/${script}_lua.h)
        set(prelude "")
        file(STRINGS ${in} first LIMIT_COUNT 1)
        if(first MATCHES "^-- prelude: ([A-Za-z0-9_]+\\.lua)$")
            set(prelude ${CMAKE_CURRENT_SOURCE_DIR}/scripts/${CMAKE_MATCH_1})
        endif()
        add_custom_command(OUTPUT ${out}
            COMMAND ${CMAKE_COMMAND} -DINPUT=${in} -DPRELUDE=${prelude}
                    -DOUTPUT=${out} -DNAME=${script}_lua -P ${PROJECT_SOURCE_DIR}/cmake/embed_lua.cmake
            DEPENDS ${in} ${prelude} ${PROJECT_SOURCE_DIR}/cmake/embed_lua.cmake
            VERBATIM)
        list(APPEND headers ${out})
        # the prelude line is read here, at configure time: a changed script configures again
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${in})
    endforeach()
    set(${var} ${headers} PARENT_SCOPE)
endfunction()
