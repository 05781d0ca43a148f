# datamart_embed_lua(VAR name...): generate <name>_lua.h from scripts/<name>.lua of the current
# source dir (a C string constant named <name>_lua) and list the headers in VAR.
function(datamart_embed_lua var)
    set(headers)
    foreach(script ${ARGN})
        set(out ${CMAKE_CURRENT_BINARY_DIR}/generated/${script}_lua.h)
        add_custom_command(OUTPUT ${out}
            COMMAND ${CMAKE_COMMAND} -DINPUT=${CMAKE_CURRENT_SOURCE_DIR}/scripts/${script}.lua
                    -DOUTPUT=${out} -DNAME=${script}_lua -P ${PROJECT_SOURCE_DIR}/cmake/embed_lua.cmake
            DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/scripts/${script}.lua
                    ${PROJECT_SOURCE_DIR}/cmake/embed_lua.cmake
            VERBATIM)
        list(APPEND headers ${out})
    endforeach()
    set(${var} ${headers} PARENT_SCOPE)
endfunction()
