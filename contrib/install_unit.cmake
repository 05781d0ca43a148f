# Installs one systemd unit with ExecStart= naming the daemon where this install puts it, so a
# --prefix other than /usr yields a unit that starts the right binary (run from install(CODE)).
# In: UNIT_SOURCE (the unit in contrib/systemd), UNIT_STAGING (a build directory),
#     UNIT_DIR and SBIN_DIR (absolute, or relative to CMAKE_INSTALL_PREFIX as given at install time).
foreach(var UNIT_DIR SBIN_DIR)
    if(IS_ABSOLUTE "${${var}}")
        set(${var}_FULL "${${var}}")
    else()
        set(${var}_FULL "${CMAKE_INSTALL_PREFIX}/${${var}}")
    endif()
endforeach()

get_filename_component(unit_name "${UNIT_SOURCE}" NAME)
file(READ "${UNIT_SOURCE}" unit_text)
string(REPLACE "ExecStart=/usr/sbin/datamartd " "ExecStart=${SBIN_DIR_FULL}/datamartd " unit_text
       "${unit_text}")
file(WRITE "${UNIT_STAGING}/${unit_name}" "${unit_text}")
file(INSTALL DESTINATION "${UNIT_DIR_FULL}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
     WORLD_READ FILES "${UNIT_STAGING}/${unit_name}")
